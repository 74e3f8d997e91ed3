"""The rule for database URLs, pure: what gangline opens, and what it refuses without showing a password."""

from __future__ import annotations

import pytest

from gangline.core.databases import check_url, has_password
from gangline.core.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "opened"),
    [
        ("sqlite:////srv/gangline/state.db", ("sqlite", "/srv/gangline/state.db")),
        ("postgresql+psycopg://gangline@db.example.org:5432/gangline", ("postgresql", "gangline")),
        ("postgresql+psycopg://gangline@/gangline?host=/run/postgresql", ("postgresql", "gangline")),
        ("postgresql://db.example.org/gangline", ("postgresql", "gangline")),
    ],
)
def test_the_urls_gangline_opens(url: str, opened: tuple[str, str]) -> None:
    assert check_url(url) == opened


@pytest.mark.parametrize(
    "url", ["mysql://db/g", "sqlite://", "sqlite:///:memory:", "postgresql+asyncpg://db/g", "postgresql://db/", "x"]
)
def test_every_other_url_is_refused_naming_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^database_url: expected sqlite:///<path> or postgresql\+psycopg://"):
        check_url(url)


def test_a_refused_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as err:
        check_url("postgresql+asyncpg://ann:hunter2@db/g")
    assert "hunter2" not in str(err.value) and "ann:***@db/g" in str(err.value)
    assert has_password("postgresql+psycopg://ann:hunter2@db/g") and not has_password("postgresql+psycopg://ann@db/g")
