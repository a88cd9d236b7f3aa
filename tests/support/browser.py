"""Headless Debian Chromium driven by Playwright for the page tests (the carer page, the duty
desk): never `playwright install`; a missing browser or package fails the test, saying how to
get it."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.worker import REPO

CHROMIUM = os.environ.get("MISSING_ALERTS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts"
BROWSER_TZ = "Europe/Paris"  # not UTC, so the local -> UTC conversion is really exercised
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Visible controls smaller than a 44 px touch target, and horizontal overflow (px).
LAYOUT_PROBLEMS_JS = """() => {
  const small = [];
  const sel = "button, input[type=text], input[type=password], input[type=datetime-local], "
    + "input[type=date], select, textarea, .choice, .action-list label";
  for (const el of document.querySelectorAll(sel)) {
    const box = el.getBoundingClientRect();
    if (box.width && box.height && box.height < 44) {
      small.push(`${el.tagName}#${el.id || el.className}: ${Math.round(box.height)}px`);
    }
  }
  const overflow = document.documentElement.scrollWidth - document.documentElement.clientWidth;
  return { small, overflow };
}"""


def chromium() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: run scripts/test (it installs it through "
            "scripts/install-test-deps), or `apt-get install chromium` as root."
        )
    return path


def playwright() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail(
            "the playwright package is missing: run `.venv/bin/pip install -e '.[dev]'` "
            "(scripts/test does); the system Chromium is used, never `playwright install`."
        )
    return async_playwright


@asynccontextmanager
async def browser(profile: Path, *, phone: bool = True) -> AsyncIterator[Any]:
    """Headless system Chromium with a fresh user-data dir: a phone (390 px, touch) or a
    desktop (1280 px) viewport."""
    executable = chromium()
    async_playwright = playwright()
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=PHONE if phone else DESKTOP,
            device_scale_factor=2 if phone else 1,
            is_mobile=phone,
            has_touch=phone,
            locale="en-GB",
            timezone_id=BROWSER_TZ,
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            await context.close()


async def wait_http(context: Any, url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if (await context.request.get(url)).status == 200:
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not served within {within}s")
        await asyncio.sleep(0.2)


def watch_problems(page: Any) -> list[str]:
    """Page errors and console errors, collected for the test to assert there were none."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    return problems
