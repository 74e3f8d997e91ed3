"""Headless Chromium (Debian's, the system binary) driven by Playwright, against a served gangline.

Playwright's own browser download is not used: ``scripts/test`` installs Debian's chromium and
the tests launch it by path. Every page records its uncaught errors and console errors (a CSP
violation is one), and the test fails if there were any. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

ARTIFACTS = Path(os.environ.get("GANGLINE_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Without the networking switches Chromium reaches for Google's services, which this machine refuses.
_ARGS = [
    "--no-sandbox",  # the tests may run as root (CI containers)
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    path = os.environ.get("GANGLINE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("no chromium on PATH: scripts/test installs Debian's (apt-get install chromium)")
    return path


@asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium(), args=_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Errors(list[str]):
    """What went wrong in the page: uncaught exceptions and console errors."""


@asynccontextmanager
async def page_at(
    url: str, viewport: dict[str, int] = DESKTOP, headers: dict[str, str] | None = None
) -> AsyncIterator[Page]:
    """A fresh browser and page on ``url``; fails the test on any page error."""
    async with browser() as b:
        context = await b.new_context(viewport=viewport, extra_http_headers=headers)  # type: ignore[arg-type]
        context.set_default_timeout(30_000)  # every wait is bounded; the pipeline's steps take well under this
        page = await context.new_page()
        errors = Errors()
        page.on("pageerror", lambda err: errors.append(f"uncaught: {err}"))
        page.on("console", lambda msg: errors.append(f"console: {msg.text}") if _is_error(msg.type, msg.text) else None)
        await page.goto(url)
        yield page
        await context.close()
        assert not errors, errors


def _is_error(kind: str, text: str) -> bool:
    # Chromium logs every 4xx answer as a console error; the page expects some (a refused token, a 422).
    return kind == "error" and not text.startswith("Failed to load resource: the server responded with a status of 4")


async def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot kept as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^\w.-]+", "-", name) + ".png")
    await page.screenshot(path=str(path), full_page=True)
    return path


async def overflows_horizontally(page: Page) -> bool:
    """Does the page itself scroll sideways (wider than the viewport)? Inner scrollers don't count."""
    return bool(await page.evaluate("document.scrollingElement.scrollWidth > window.innerWidth + 1"))
