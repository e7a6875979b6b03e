"""Fixtures for the UI: a user who can log in, and headless Chromium driven by Playwright.

Chromium is Debian's (/usr/bin/chromium, or RUNWAY_TEST_CHROMIUM); Playwright only
drives it, it downloads no browser. Screenshots go to RUNWAY_UI_SCREENSHOTS
(docs/ui.md is made from `RUNWAY_UI_SCREENSHOTS=docs/ui pytest tests/ui`), else
under the test home.
"""
from __future__ import annotations

import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("RUNWAY_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium keeps trying Google's services, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
PASSWORD = "a long test password 1"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("RUNWAY_UI_SCREENSHOTS") or Path(os.environ["RUNWAY_HOME"]) / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: while Playwright runs, its event loop is current in this thread, and the
    ORM refuses to run here (see `orm`); it must be gone before other modules' tests run."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"no Chromium at {CHROMIUM}: install Debian's chromium package (scripts/ensure-chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def orm(fn, *args, **kwargs):
    """Call `fn` (which uses the ORM) in another thread: Playwright's sync API runs an event loop in
    this one, and Django refuses database calls from a thread with a running loop. The thread's
    connection is closed after (given back to the pool on PostgreSQL)."""
    from django.db import connections

    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


@pytest.fixture
def ui_user():
    """A new user's (username, password)."""
    from django.contrib.auth import get_user_model

    name = f"ui-{uuid.uuid4().hex[:8]}"
    orm(get_user_model().objects.create_user, username=name, password=PASSWORD, is_staff=True, is_superuser=True)
    return name, PASSWORD


def log_in(page, base_url: str, user: tuple[str, str]) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")


@pytest.fixture
def page(browser, live_server, ui_user):
    """A logged-in page of a new browser context, on the session's live server."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    log_in(tab, live_server, ui_user)
    yield tab
    context.close()
