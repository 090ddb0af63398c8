"""A real `trailseal serve` subprocess and headless Debian Chromium (Playwright) for the console tests."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import trailseal
from tests.api.server import Server

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
SILENT_AFTER = "3"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = trailseal.init(tmp_path_factory.mktemp("ui") / "data", origin="console.trailseal")
    running = Server(directory, env={"TRAILSEAL_ALERTS__SILENT_AFTER_SECONDS": SILENT_AFTER}).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def reader(server):
    return server.token(role="reader")


@pytest.fixture(scope="module")
def page(browser, server):
    """A laptop-sized page logged in as an auditor."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    login(page, server, server.token(role="auditor"))
    yield page
    context.close()


def login(page, server, token: str) -> None:
    page.goto(server.url + "/ui/login")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ui/stream")


def shoot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def send(server, events: list[dict]) -> None:
    response = httpx.post(server.url + "/v1/events", json=events, headers={"Authorization": f"Bearer {server.admin}"})
    assert response.status_code == 200, response.text
