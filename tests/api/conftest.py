"""The browser suites' fixtures: one headless chromium, and the app served on a local port for it."""

import shutil
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from devservers import free_port
from main import create_app


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """One headless chromium for the session. It can resolve no host name but 127.0.0.1, so a page
    that reached for a CDN would fail to load it."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and chromedriver, "chromium and chromedriver come from scripts/install_test_servers.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def serve(make_settings, backend) -> Iterator[Callable[..., tuple[str, FastAPI]]]:
    """Serve an app (settings overrides as arguments) under uvicorn on a free local port, for the browser;
    its base URL and the app. Every server is stopped after the test."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: object) -> tuple[str, FastAPI]:
        app = create_app(make_settings(**overrides))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{server.config.port}", app

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def served(serve) -> str:
    """The app with the test's default settings, served for the browser."""
    url, _ = serve()
    return url


def wait(driver: WebDriver, condition, timeout: float = 10):
    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(lambda _: condition())
