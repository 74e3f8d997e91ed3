"""A real Synapse homeserver on loopback for the tests: its config, its process, and users made on it."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SYNAPSE_PYTHON = REPO_ROOT / ".venv-synapse" / "bin" / "python"
SERVER_NAME = "localhost"
READY_WITHIN_S = 60.0
STOP_WITHIN_S = 10.0
DEFAULT_PASSWORD = "correct horse battery staple"

# Every limit Synapse 1.163 reads, raised so that tests never wait on a 429.
_UNLIMITED = {"per_second": 10_000, "burst_count": 10_000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_admin_redaction": _UNLIMITED,
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_key_requests": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_third_party_invite": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_user_directory": _UNLIMITED,
    "rc_profile": _UNLIMITED,
}

_counter = itertools.count(1)


def fresh(prefix: str) -> str:
    """A localpart no other test has used: the homeserver lives for the whole session."""
    return f"{prefix.lower()}-{next(_counter)}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Account:
    """A user registered on the homeserver, logged in with one device."""

    user_id: str
    password: str
    access_token: str
    device_id: str


@dataclass(frozen=True)
class Synapse:
    """A running homeserver: where it answers, and the secret that lets tests make users."""

    url: str
    server_name: str
    registration_shared_secret: str
    workdir: Path

    def register(self, localpart: str, password: str = DEFAULT_PASSWORD, admin: bool = False) -> Account:
        """Make a user through the shared-secret admin API (open registration is off)."""
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        with httpx.Client(timeout=10.0) as http:
            nonce_response = http.get(endpoint)
            nonce_response.raise_for_status()
            nonce = nonce_response.json()["nonce"]
            message = b"\x00".join(
                part.encode() for part in (nonce, localpart, password, "admin" if admin else "notadmin")
            )
            mac = hmac.new(self.registration_shared_secret.encode(), message, hashlib.sha1).hexdigest()
            body = {"nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac}
            response = http.post(endpoint, json=body)
        if response.status_code != 200:
            raise AssertionError(f"registering {localpart!r} failed: {response.status_code} {response.text}")
        data = response.json()
        return Account(data["user_id"], password, data["access_token"], data["device_id"])

    def room_events(self, account: Account, room_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The room's timeline as the server stores it (newest first): what the server saw, not what a client shows."""
        path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages"
        response = httpx.get(
            f"{self.url}{path}",
            params={"dir": "b", "limit": limit},
            headers={"Authorization": f"Bearer {account.access_token}"},
            timeout=10.0,
        )
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["chunk"]
        return events

    def log_tail(self, lines: int = 40) -> str:
        """The end of Synapse's warning log and stderr, for failure messages."""
        return _log_tail(self.workdir, lines)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _log_config(workdir: Path) -> dict[str, Any]:
    """WARNING and above to a file in the workdir, so a failing test can show why."""
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "plain",
                "filename": str(workdir / "homeserver.log"),
                "level": "WARNING",
            }
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def _homeserver_config(workdir: Path, port: int, secret: str) -> dict[str, Any]:
    """A single-process homeserver on 127.0.0.1: SQLite, no federation, no open registration, no limits."""
    listener = {
        "port": port,
        "bind_addresses": ["127.0.0.1"],
        "type": "http",
        "tls": False,
        "x_forwarded": False,
        "resources": [{"names": ["client"], "compress": False}],
    }
    return {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(workdir / "homeserver.pid"),
        "listeners": [listener],
        "database": {"name": "sqlite3", "args": {"database": str(workdir / "homeserver.db")}},
        "log_config": str(workdir / "log.yaml"),
        "media_store_path": str(workdir / "media"),
        "signing_key_path": str(workdir / "signing.key"),
        "registration_shared_secret": secret,
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "enable_registration": False,
        "bcrypt_rounds": 4,  # hashing at the default cost would dominate user creation
        "report_stats": False,
        "enable_metrics": False,
        "url_preview_enabled": False,
        "presence": {"enabled": False},
        "federation_domain_whitelist": [],
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        **_RATE_LIMITS,
    }


def _write_config(workdir: Path, port: int, secret: str) -> Path:
    (workdir / "media").mkdir(exist_ok=True)
    (workdir / "log.yaml").write_text(yaml.safe_dump(_log_config(workdir)))
    config = workdir / "homeserver.yaml"
    config.write_text(yaml.safe_dump(_homeserver_config(workdir, port, secret)))
    return config


def _require_synapse_python() -> str:
    """Synapse's own venv; missing is a failure, not a skip: scripts/test installs it."""
    if not SYNAPSE_PYTHON.exists():
        pytest.fail(f"Synapse is missing at {SYNAPSE_PYTHON}: run ./scripts/test, which installs it", pytrace=False)
    return str(SYNAPSE_PYTHON)


def _log_tail(workdir: Path, lines: int = 40) -> str:
    parts = []
    for name in ("homeserver.log", "stderr.log"):
        path = workdir / name
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name} (last {len(tail)} lines) ---\n" + "\n".join(tail))
    return "\n".join(parts) or "(Synapse wrote no log)"


def _generate_keys(python: str, config: Path) -> None:
    """Make the signing key once; Synapse refuses to start without it."""
    result = subprocess.run(
        [python, "-m", "synapse.app.homeserver", "--generate-keys", "-c", str(config)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Synapse --generate-keys failed ({result.returncode}):\n{result.stderr[-4000:]}")


def _wait_ready(process: subprocess.Popen[bytes], url: str, workdir: Path) -> None:
    """Poll /versions until it answers 200, the process exits, or READY_WITHIN_S passes."""
    deadline = time.monotonic() + READY_WITHIN_S
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{url}/_matrix/client/versions").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            try:
                code = process.wait(timeout=0.1)  # paces the poll and notices an early exit at once
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"Synapse exited with {code} before it was ready:\n{_log_tail(workdir)}")
    raise RuntimeError(f"Synapse was not ready within {READY_WITHIN_S:.0f} s:\n{_log_tail(workdir)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, then SIGKILL if it does not go in time."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_WITHIN_S)
    except ProcessLookupError:
        pass  # gone between poll and kill


@contextmanager
def start_synapse(workdir: Path) -> Iterator[Synapse]:
    """Run a homeserver in `workdir` (config, keys, database, logs all live there) until the block ends."""
    python = _require_synapse_python()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    secret = secrets.token_hex(16)
    config = _write_config(workdir, port, secret)
    _generate_keys(python, config)
    with (workdir / "stdout.log").open("wb") as out, (workdir / "stderr.log").open("wb") as err:
        process = subprocess.Popen(
            [python, "-m", "synapse.app.homeserver", "-c", str(config)],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, so stopping it takes any children too
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(process, url, workdir)
        yield Synapse(url, SERVER_NAME, secret, workdir)
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """One homeserver for the whole session; tests make fresh users and rooms on it."""
    with start_synapse(tmp_path_factory.mktemp("synapse")) as server:
        yield server
