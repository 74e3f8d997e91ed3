"""Which database URLs gangline can open: the rule, in one place, without loading a database library.

``project.config`` checks ``database_url`` with it when project.toml is read, ``store.opening``
before it opens anything; both refuse the same URL in the same words.
"""

from __future__ import annotations

import re

from gangline.core.errors import ConfigError

EXPECTED = "expected sqlite:///<path> or postgresql+psycopg://[user@]host[:port]/database"
_POSTGRES = ("postgresql", "postgresql+psycopg")  # SQLAlchemy reads the plain name as psycopg too


# scheme://[user[:password]@][host[:port]]/database[?query]: all this rule needs of a URL.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?:(?P<user>[^/?#@:]*)(?::(?P<password>[^/?#@]*))?@)?"
                  r"(?P<host>[^/?#]*)(?:/(?P<database>[^?#]*))?(?:[?#].*)?", re.DOTALL)  # fmt: skip


def check_url(url: str) -> tuple[str, str]:
    """(backend: ``sqlite`` or ``postgresql``, database) of a URL gangline can open; ConfigError otherwise."""
    found = _URL.fullmatch(url)
    if found is not None:
        scheme, database = found["scheme"], found["database"] or ""
        if scheme == "sqlite" and not found["host"] and found["user"] is None and database not in ("", ":memory:"):
            return "sqlite", database
        if scheme in _POSTGRES and database:
            return "postgresql", database
    shown = url.replace(f":{found['password']}@", ":***@") if found and found["password"] else url
    raise ConfigError("database_url", f"{EXPECTED}, got {shown!r}")


def has_password(url: str) -> bool:
    """Whether the URL carries a password (project.toml must not: it is committed)."""
    found = _URL.fullmatch(url)
    return found is not None and found["password"] is not None
