"""The person's secret: what every person's door needs and no agent sees (``.gangline/secret``, mode 0600).

Made once per project, the first time a server serves it; the CLI reads it by itself to reach
that server, and the board gets a session cookie for it through a one-time login link. The
sandbox never shows ``.gangline/``, and the server takes it out of every environment it gives
an agent or a gate.
"""

from __future__ import annotations

import os
import secrets
import stat

from gangline.core.errors import ConfigError
from gangline.project.paths import ProjectPaths

SECRET_FILE = "secret"
MIN_CHARS = 16


def secret_path(paths: ProjectPaths) -> os.PathLike[str]:
    return paths.state_dir / SECRET_FILE


def read_secret(paths: ProjectPaths) -> str | None:
    """The project's secret, if one was made and this user may read it."""
    try:
        value = (paths.state_dir / SECRET_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if len(value) >= MIN_CHARS else None


def person_secret(paths: ProjectPaths) -> str:
    """The project's secret, made now (readable by its owner only) if there is none yet."""
    path = paths.state_dir / SECRET_FILE
    found = read_secret(paths)
    if found is not None:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            path.chmod(0o600)  # someone loosened it: only its owner may read a person's secret
        return found
    value = secrets.token_urlsafe(32)
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: theirs it is
        again = read_secret(paths)
        if again is None:
            raise ConfigError(str(path), "exists but holds no usable secret; remove it to make a new one") from None
        return again
    except OSError as err:
        raise ConfigError(str(path), f"cannot be written: {err.strerror or err}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value + "\n")
    return value
