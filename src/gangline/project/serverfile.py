"""``.gangline/server.json``: where the server driving this project listens, so the CLI can find it.

``gangline serve`` (and ``run`` and ``demo``) write it, replaced atomically, once they listen
(``{"url", "pid"}``) and remove it when they begin to shut down.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gangline.project.paths import ProjectPaths

SERVER_FILE = "server.json"


@dataclass(frozen=True)
class ServerFile:
    url: str
    pid: int


def server_file(paths: ProjectPaths) -> Path:
    return paths.state_dir / SERVER_FILE


def announce_server(paths: ProjectPaths, url: str) -> None:
    """Say where this process serves the project (``gangline serve`` calls it once it listens)."""
    path = server_file(paths)
    temporary = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
    temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n", encoding="utf-8")
    os.replace(temporary, path)  # a reader sees the old file or the new one, never half of one


def withdraw_server(paths: ProjectPaths) -> None:
    """Remove the server file, but only this process's: a second server refused by the lock wrote none."""
    found = read_server_file(paths)
    if found is not None and found.pid == os.getpid():
        server_file(paths).unlink(missing_ok=True)


def read_server_file(paths: ProjectPaths) -> ServerFile | None:
    try:
        data = json.loads(server_file(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not isinstance(data.get("pid"), int):
        return None
    return ServerFile(data["url"], data["pid"])


def live_server(paths: ProjectPaths) -> ServerFile | None:
    """The server file, if the process it names still lives (a killed server leaves its file behind)."""
    found = read_server_file(paths)
    return found if found is not None and _alive(found.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: the probe decides
    return True
