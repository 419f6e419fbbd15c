"""What the console's browser tests share: Debian's Chromium driven by playwright, a real
`ragops serve` on a fresh data dir (embedded defaults, redaction off, the admin key
`ADMIN`), a `Watch` on console errors, failed and outside requests, and screenshots.

A test module binds the fixtures it uses to module names (pytest finds them there)::

    from tests.utils import console_browser

    browser = console_browser.browser
    server = console_browser.server

Without Chromium or playwright the fixtures skip with the reason (and fail under
CI=true), as the report browser test does. Set RAGOPS_CONSOLE_SCREENSHOTS=docs/console
to keep the screenshots (`keep_screenshots`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_service
from tests.utils.servers import ragops_server

CHROMIUM = os.environ.get("RAGOPS_CHROMIUM", "/usr/bin/chromium")
ADMIN = "console-browser-admin"
WIDTH, HEIGHT = 1280, 800
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        need_service("Chromium", f"{CHROMIUM} not found; install it with `make browser`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        need_service("playwright", f"{exc}; install the dev extra: pip install -e '.[dev]'")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        except Exception as exc:  # noqa: BLE001 - any launch failure means "no browser"
            need_service("Chromium", f"{CHROMIUM} did not start: {exc}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """`ragops serve` on a fresh data dir; yields its base URL once it is ready."""
    tmp = tmp_path_factory.mktemp("console-server")
    # The packaged English model loads and embeds fastest; KBs pick theirs anyway.
    with ragops_server(tmp, ADMIN, RAGOPS_EMBEDDING_MODEL="all-MiniLM-L6-v2") as (_, url):
        yield url


class Watch:
    """What a browser context did: console errors, failed requests, error responses and
    every URL it asked for."""

    def __init__(self, context, base: str) -> None:
        self.base = base
        self.urls: list[str] = []
        self.problems: list[str] = []
        self.error_responses: list[str] = []
        context.on("request", lambda r: self.urls.append(r.url))
        context.on("requestfailed", lambda r: self.problems.append(f"failed {r.url} {r.failure}"))
        context.on(
            "response",
            lambda r: (
                self.error_responses.append(f"{r.status} {r.request.method} {r.url}")
                if r.status >= 400
                else None
            ),
        )

    def page(self, context):
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error {e}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog {d.message}"), d.dismiss()))
        return page

    def check(self, expected_errors: tuple[str, ...] = ()) -> None:
        """Only the expected error responses (and Chromium's console line for each)."""
        assert self.error_responses == list(expected_errors), self.error_responses
        statuses = {e.split()[0] for e in expected_errors}
        unexpected = [
            p
            for p in self.problems
            if not any(f"status of {s}" in p and "Failed to load resource" in p for s in statuses)
        ]
        assert unexpected == [], unexpected
        outside = [u for u in self.urls if not u.startswith(self.base + "/")]
        assert outside == [], outside


def shoot(page, shots: Path, name: str, *, full: bool = False) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=full)


def keep_screenshots(shots: Path, target: Path) -> None:
    """Palette PNGs (a screenshot of flat UI colours loses nothing visible at 256)."""
    from PIL import Image

    target.mkdir(parents=True, exist_ok=True)
    for shot in sorted(shots.glob("*.png")):
        with Image.open(shot) as image:
            small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
            small.save(target / shot.name, optimize=True)
