"""A private PostgreSQL cluster for the test session: initdb in a temporary directory, served on a Unix socket.

Debian's PostgreSQL server binaries (installed by scripts/test) are used as they are. ``initdb``
refuses to run as root, so as root the cluster is made and run by the ``postgres`` user, in a
directory it owns. It listens on no TCP port at all, only on a socket in its own directory, so
no port is picked and hoped free; ``pg_ctl -w`` returns once it accepts connections. Durability
is off (``fsync``): a test cluster that dies is thrown away. Every test gets a database of its
own (``Cluster.database``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from gangline.store import Store
from kits import pipeline_kit

USER = "gangline"
START_TIMEOUT_S = 60


def server_bin() -> Path:
    """The directory of the newest installed PostgreSQL server's binaries."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise AssertionError("PostgreSQL's server is not installed (/usr/lib/postgresql/*/bin): run ./scripts/test")
    return found[-1].parent


@dataclass
class Cluster:
    home: Path  # the data directory's parent, and where the socket is
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def socket_dir(self) -> Path:
        return self.home / "socket"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` in this cluster (psycopg over the Unix socket)."""
        return f"postgresql+psycopg://{USER}@/{database}?host={self.socket_dir}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host=str(self.socket_dir), user=USER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start(home: Path, *, durable: bool = False) -> Cluster:
    """Make and start a cluster under ``home`` (which its owner must be able to enter); ``durable``: fsync on."""
    bin_dir = server_bin()
    data, socket_dir = home / "data", home / "socket"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(socket_dir, "postgres")
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C"]
    subprocess.run(_as_owner([*initdb, "--no-sync"]), check=True, capture_output=True, timeout=START_TIMEOUT_S)
    options = f"-c listen_addresses='' -c unix_socket_directories='{socket_dir}'"
    options += "" if durable else " -c fsync=off -c full_page_writes=off"
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-o", options]
    subprocess.run(_as_owner([*pg_ctl, "-w", "-t", str(START_TIMEOUT_S), "start"]), check=True, capture_output=True)
    return Cluster(home)


def stop(cluster: Cluster) -> None:
    pg_ctl = [str(server_bin() / "pg_ctl"), "-D", str(cluster.home / "data"), "-m", "immediate", "-w", "stop"]
    subprocess.run(_as_owner(pg_ctl), check=False, capture_output=True, timeout=START_TIMEOUT_S)


@contextmanager
def private_cluster(*, durable: bool = False) -> Iterator[Cluster]:
    """A cluster of its own in a new temporary directory, stopped and removed when the block ends."""
    # Not under pytest's tmp_path: that is private to root (0700), and the cluster runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="gangline-pg-"))
    home.chmod(0o755)
    try:
        cluster = start(home, durable=durable)
        try:
            yield cluster
        finally:
            stop(cluster)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """The session's cluster, started the first time a test asks for it."""
    with private_cluster() as cluster:
        yield cluster


DATABASES = ("sqlite", "postgresql")


@pytest.fixture(params=DATABASES)
def project_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Projects made in the test keep their state in their own SQLite file, or in a new PostgreSQL database."""
    url = request.getfixturevalue("postgres").database() if request.param == "postgresql" else None
    opened: list[Store] = []
    previous = pipeline_kit.DATABASE_URL, pipeline_kit.OPENED
    pipeline_kit.DATABASE_URL, pipeline_kit.OPENED = url, opened
    try:
        yield url
        assert {store.engine.dialect.name for store in opened} <= {request.param}  # its projects used it
    finally:
        pipeline_kit.DATABASE_URL, pipeline_kit.OPENED = previous
        for store in opened:
            store.close()
