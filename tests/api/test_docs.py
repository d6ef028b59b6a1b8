"""Swagger UI and ReDoc work without internet access: their assets come from the app, and a real
headless browser (Debian's chromium, which may resolve no host but the test server) renders /docs
and runs "Try it out"."""

import json
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.api.conftest import wait

pytestmark = pytest.mark.backends("sqlite")
REDOC_BRANDING = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_docs_pages_load_only_from_the_app(client: TestClient, backend) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", html)
        urls = [url for pair in assets for url in pair if url]
        assert urls, page
        assert all(url.startswith("/") for url in urls), urls
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            assert len(response.content) > 1000, url


def test_docs_assets_are_not_served_when_docs_are_off(make_client, backend) -> None:
    client = make_client(docs_enabled=False)
    for path in ("/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js"):
        assert client.get(path).status_code == 404, path


def try_it_out(driver: WebDriver, operation_id: str) -> tuple[str, str]:
    """Open an operation, press "Try it out", then Execute with what Swagger UI filled in from the
    document's examples; the status code and response body it shows."""
    block = driver.find_element(By.ID, f"operations-features-{operation_id}")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait(driver, lambda: block.find_element(By.CSS_SELECTOR, ".try-out__btn")).click()
    wait(driver, lambda: block.find_element(By.CSS_SELECTOR, ".execute")).click()
    response = wait(driver, lambda: block.find_element(By.CSS_SELECTOR, ".live-responses-table .response"))
    status = response.find_element(By.CSS_SELECTOR, ".response-col_status").text.strip()
    return status, response.find_element(By.CSS_SELECTOR, ".response-col_description pre").text


@pytest.mark.slow
def test_swagger_ui_renders_every_operation_and_try_it_out_works(browser: WebDriver, served: str, backend) -> None:
    document = httpx.get(f"{served}/openapi.json").json()
    operations = {
        (method.upper(), path, operation["operationId"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    browser.get(f"{served}/docs")
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, ".opblock")) == len(operations))
    shown = {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
            block.find_element(By.CSS_SELECTOR, ".opblock-summary [data-path]").get_attribute("data-path"),
            str(block.get_attribute("id")).split("-", 2)[2],
        )
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    }
    assert shown == operations
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")
    assert loaded and all(url.startswith(served) for url in loaded), loaded

    # The earlier API's operations with the examples Swagger UI fills in: a write, then a read of it.
    status, _ = try_it_out(browser, "write_features_earlier")
    assert status == "200"
    status, body = try_it_out(browser, "read_features_earlier")
    assert status == "200"
    assert json.loads(body)["items"]["user_features"]["features"]["data"] == {"age": 30, "income": 60000}


@pytest.mark.slow
def test_redoc_renders(browser: WebDriver, served: str, backend) -> None:
    browser.get(f"{served}/redoc")
    wait(browser, lambda: browser.find_elements(By.XPATH, "//h2[text()='Read one category of one entity']"))
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")
    # ReDoc's "powered by" image is the one thing it fetches from outside; offline it hides itself.
    assert {url for url in loaded if not url.startswith(served)} <= {REDOC_BRANDING}, loaded
