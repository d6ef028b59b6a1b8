"""`/console`: served by the app with a strict Content-Security-Policy, its files free of inline code and
of markup built from strings; and, in a real headless chromium, each page with API keys off and on:
every state of a category, values rendered as text, the registry filtered, dead letters re-driven by an
admin only, no serious accessibility violation (axe-core), and a lookup made with the keyboard alone.
Screenshots of each page go to `test-artifacts/console/`."""

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from api.console import CONSOLE_DIRECTORY
from tests.api.conftest import wait
from tests.api.v1.test_admin import PoisonSink
from tests.conftest import AppClient
from tests.factories import write_body

pytestmark = pytest.mark.backends("sqlite")
REPOSITORY = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPOSITORY / "test-artifacts" / "console"
AXE = REPOSITORY / ".servers" / "node_modules" / "axe-core" / "axe.min.js"
XSS = "<img src=x onerror=alert(1)>"
REGISTRY = """
categories:
  user_features:
    owner: profile-team
    description: Demographics from the nightly profile job
    max_age_seconds: 3600
    features:
      age: {type: int, description: Age in years}
      bio: {type: string}
      scores: {type: "list<float>"}
      profile: {type: map}
  credit_features:
    owner: risk-team
    max_age_seconds: 60
    features:
      credit_score: {type: int}
  trans_features:
    owner: payments-team
    default_ttl_seconds: 3600
  erased_features: {}
  empty_features: {}
"""


def test_the_console_answers_with_strict_security_headers(client: AppClient, backend) -> None:
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/"
    for path in ("/console/", "/console/app.js", "/console/console.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert client.get("/console/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/console/missing.js").status_code == 404
    assert client.get("/console/../main.py").status_code == 404


def test_the_console_is_absent_when_switched_off(make_client, backend) -> None:
    client = make_client(console_enabled=False)
    for path in ("/console", "/console/", "/console/app.js"):
        assert client.get(path).status_code == 404, path


def test_the_console_files_hold_no_inline_code_nor_markup_from_strings() -> None:
    html = (CONSOLE_DIRECTORY / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert not re.search(r"<style|\sstyle=|\son\w+=", html), "inline style or handler"
    assert all(not url.startswith(("http:", "https:", "//")) for url in re.findall(r'(?:src|href)="([^"]+)"', html))
    for script in CONSOLE_DIRECTORY.glob("*.js"):
        source = script.read_text()
        for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert unsafe not in source, f"{script.name} uses {unsafe}"


# --- In the browser ----------------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.isoformat()


def write(
    url: str,
    entity: str,
    categories: dict[str, dict[str, Any]],
    key: str = "",
    source: str = "prediction_service",
    **meta: Any,
) -> None:
    headers = {"X-API-Key": key} if key else {}
    body = write_body(entity, categories, source=source, **meta)
    response = httpx.post(f"{url}/api/v1/items", json=body, headers=headers)
    assert response.status_code == 200, response.text


def write_every_state(url: str, entity: str, key: str = "", source: str = "prediction_service") -> None:
    """fresh: user_features; stale: credit_features (older than its max age); expired: trans_features;
    erased: erased_features; absent: empty_features."""
    now = datetime.now(UTC)
    values = {"age": 30, "bio": XSS, "scores": [0.5, 1.5], "profile": {"tier": "gold", "tags": ["a", "b"]}}
    write(url, entity, {"user_features": values}, key, source, event_time=iso(now))
    write(
        url, entity, {"credit_features": {"credit_score": 700}}, key, source, event_time=iso(now - timedelta(hours=2))
    )
    write(url, entity, {"trans_features": {"amount": 12.5, "note": "x" * 300}}, key, source, ttl=1)
    write(url, entity, {"erased_features": {"flag": True}}, key, source)
    headers = {"X-API-Key": key} if key else {}
    deleted = httpx.delete(f"{url}/api/v1/items/{entity}", params={"category": "erased_features"}, headers=headers)
    assert deleted.status_code == 200, deleted.text
    time.sleep(1.1)  # trans_features' TTL


def screenshot(browser: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def open_page(browser: WebDriver, url: str, fragment: str, ready: Callable[[], Any]) -> None:
    browser.get(f"{url}/console/{fragment}")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait(browser, ready)


def states(browser: WebDriver) -> dict[str, str]:
    """Read in one script, so a page re-rendering meanwhile cannot leave a stale element."""
    return browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#entity-result section[data-category]')]"
        ".map(section => [section.dataset.category, section.dataset.state]))"
    )


def no_serious_accessibility_violation(browser: WebDriver, page: str) -> None:
    assert AXE.is_file(), "axe-core comes from scripts/install_test_servers.sh"
    browser.execute_script(AXE.read_text())
    found = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then("
        "  result => done(result.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))),"
        "  error => done([{id: String(error), impact: 'critical'}]));"
    )
    serious = [violation for violation in found if violation["impact"] in ("serious", "critical")]
    assert not serious, f"{page}: {serious}"


def no_alert_and_no_browser_errors(browser: WebDriver) -> None:
    assert browser.execute_script("return document.querySelectorAll('#main img').length") == 0
    logged = browser.execute("getLog", {"type": "browser"})["value"]
    errors = [entry for entry in logged if entry["level"] == "SEVERE"]
    assert not errors, errors


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return path


@pytest.mark.slow
def test_the_entity_page_shows_every_state_and_values_as_text(
    browser: WebDriver, serve, registry_file: Path, backend
) -> None:
    url, _ = serve(feature_registry_file=str(registry_file))
    write_every_state(url, "user-1")
    open_page(browser, url, "#entity?entity_type=bright_uid&id=user-1", lambda: states(browser))
    assert states(browser) == {
        "user_features": "fresh",
        "credit_features": "stale",
        "trans_features": "expired",
        "erased_features": "erased",
        "empty_features": "absent",
    }
    assert browser.find_element(By.ID, "access").text == "API keys are off: no key needed."
    screenshot(browser, "entity")
    users = browser.find_element(By.CSS_SELECTOR, 'section[data-category="user_features"]')
    bio = users.find_element(By.CSS_SELECTOR, 'tr[data-feature="bio"] td')
    assert bio.text == f'"{XSS}"'
    assert users.find_element(By.CSS_SELECTOR, 'tr[data-feature="age"] td.type').text == "int"
    assert "map of 2" in users.find_element(By.CSS_SELECTOR, 'tr[data-feature="profile"]').text
    assert "Source\nprediction_service" in users.text
    long = browser.find_element(By.CSS_SELECTOR, 'section[data-category="trans_features"] details.long')
    assert "(300 characters)" in long.text
    long.find_element(By.TAG_NAME, "summary").click()
    assert long.find_element(By.CSS_SELECTOR, "pre.whole").text == '"' + "x" * 300 + '"'
    stale = browser.find_element(By.CSS_SELECTOR, 'section[data-category="credit_features"] .why').text
    assert "max_age_seconds" in stale and "1 min" in stale
    curl = browser.find_element(By.ID, "snippet-curl").get_attribute("textContent") or ""
    assert "/api/v1/get/items" in curl and '"user-1"' in curl and "X-API-Key" not in curl
    no_alert_and_no_browser_errors(browser)
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")
    assert loaded and all(name.startswith(url) for name in loaded), loaded  # offline: nothing from elsewhere
    no_serious_accessibility_violation(browser, "entity")

    browser.refresh()  # the URL carries the lookup
    wait(browser, lambda: states(browser).get("user_features") == "fresh")


@pytest.mark.slow
def test_without_a_registry_file_the_entity_page_shows_the_stored_categories(
    browser: WebDriver, serve, backend
) -> None:
    url, _ = serve()
    write(url, "user-2", {"credit_features": {"credit_score": 700}})
    open_page(browser, url, "#entity?entity_type=bright_uid&id=user-2", lambda: states(browser))
    assert states(browser) == {"credit_features": "fresh"}, "not every category of ALLOWED_CATEGORIES"
    status = browser.find_element(By.ID, "entity-status").text
    assert "1 category stored (no registry file), 1 fresh" in status


@pytest.mark.slow
def test_a_lookup_is_made_with_the_keyboard_alone(browser: WebDriver, serve, registry_file: Path, backend) -> None:
    url, _ = serve(feature_registry_file=str(registry_file))
    write(url, "o'brien 2", {"user_features": {"age": 41}})
    open_page(browser, url, "", lambda: browser.find_elements(By.CSS_SELECTOR, "#entity-type option"))
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    for _ in range(10):
        if focused.get_attribute("id") == "entity-type":
            break
        focused.send_keys(Keys.TAB)
        focused = browser.switch_to.active_element
    focused.send_keys("b", Keys.TAB)  # the first entity type starting with b: bright_uid
    assert browser.switch_to.active_element.get_attribute("id") == "entity-id"
    browser.switch_to.active_element.send_keys("o'brien 2", Keys.ENTER)
    wait(browser, lambda: states(browser).get("user_features") == "fresh")
    assert browser.current_url.endswith("#entity?entity_type=bright_uid&id=o%27brien+2")
    curl = browser.find_element(By.ID, "snippet-curl").get_attribute("textContent") or ""
    assert '"entity_value":"o\'\\\'\'brien 2"' in curl  # the id closes, escapes and reopens the shell's quotes


@pytest.mark.slow
def test_with_api_keys_the_page_asks_for_one_and_says_what_it_may_do(
    browser: WebDriver, serve, registry_file: Path, api_keys: dict[str, str], tmp_path: Path, backend
) -> None:
    url, _ = serve(
        feature_registry_file=str(registry_file), auth_enabled=True, api_keys_file=str(tmp_path / "keys.json")
    )
    write_every_state(url, "user-3", api_keys["any_writer"], "batch_job")
    key_form = lambda: browser.find_element(By.ID, "key-form").is_displayed()  # noqa: E731
    open_page(browser, url, "#entity?entity_type=bright_uid&id=user-3", key_form)
    assert browser.find_element(By.ID, "access").text == "An API key is needed."
    assert not states(browser)
    screenshot(browser, "key")
    no_serious_accessibility_violation(browser, "key")

    browser.find_element(By.ID, "key-input").send_keys("fs_not-a-key", Keys.ENTER)
    wait(browser, lambda: "not valid (401)" in browser.find_element(By.ID, "key-error").text)
    browser.find_element(By.ID, "key-input").send_keys(api_keys["writer"], Keys.ENTER)
    wait(browser, lambda: states(browser).get("credit_features") == "stale")
    assert sorted(states(browser).values()) == ["absent", "erased", "expired", "fresh", "stale"]
    assert browser.find_element(By.ID, "key-grants").text == (
        "Key writer: may read features; write credit_features, user_features as prediction_service, backfill; no admin"
    )
    assert browser.execute_script("return document.cookie") == ""
    assert browser.execute_script("return sessionStorage.length") == 1
    curl = browser.find_element(By.ID, "snippet-curl").get_attribute("textContent") or ""
    assert '"X-API-Key: $FEATURE_STORE_API_KEY"' in curl and api_keys["writer"] not in curl

    browser.find_element(By.ID, "forget-key").click()  # an admin-only key: reads are refused, as such
    wait(browser, key_form)
    browser.find_element(By.ID, "key-input").send_keys(api_keys["operator"], Keys.ENTER)
    status = browser.find_element(By.ID, "entity-status")
    wait(browser, lambda: "Forbidden (403)" in status.text)
    assert "not found" not in status.text.lower()
    assert browser.find_element(By.ID, "key-grants").text == "Key operator: may not read features; not write; admin"


@pytest.mark.slow
def test_the_registry_page_lists_and_filters(browser: WebDriver, serve, registry_file: Path, backend) -> None:
    url, _ = serve(feature_registry_file=str(registry_file))

    def shown() -> list[str | None]:
        return [
            s.get_attribute("data-category") for s in browser.find_elements(By.CSS_SELECTOR, "#registry-result section")
        ]

    open_page(browser, url, "#registry", shown)
    assert shown() == ["user_features", "credit_features", "trans_features", "erased_features", "empty_features"]
    users = browser.find_element(By.CSS_SELECTOR, '#registry-result section[data-category="user_features"]')
    assert "Owner\nprofile-team" in users.text and "Max age\n1 h (3600 s)" in users.text
    assert "age int no Age in years" in users.text
    screenshot(browser, "registry")
    no_serious_accessibility_violation(browser, "registry")

    browser.find_element(By.ID, "registry-filter").send_keys("risk")
    wait(browser, lambda: shown() == ["credit_features"])
    assert browser.find_element(By.ID, "registry-status").text.startswith('1 of 5 categories match "risk"')
    browser.find_element(By.ID, "registry-filter").clear()
    browser.find_element(By.ID, "registry-filter").send_keys("list<float>")
    wait(browser, lambda: shown() == ["user_features"])
    browser.find_element(By.ID, "registry-reload").click()
    wait(browser, lambda: "(304)" in browser.find_element(By.ID, "registry-status").text)


def poisoned(serve, **overrides: Any) -> tuple[str, FastAPI, PoisonSink]:
    url, app = serve(outbox_poll_seconds=0.05, outbox_gauge_seconds=0.05, **overrides)
    sink = PoisonSink()
    app.state.runtime.relay.sink = sink
    return url, app, sink


def dead_letter_rows(browser: WebDriver) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#dead-letters tr[data-event-id]')].map(row => row.dataset.eventId)"
    )


@pytest.mark.slow
def test_the_pipeline_page_redrives_a_dead_letter_with_an_admin_key_only(
    browser: WebDriver, serve, api_keys: dict[str, str], tmp_path: Path, backend
) -> None:
    url, _, sink = poisoned(serve, auth_enabled=True, api_keys_file=str(tmp_path / "keys.json"))
    write(url, "poison-1", {"user_features": {"age": 1}}, api_keys["writer"])
    admin = {"X-API-Key": api_keys["operator"]}
    wait(browser, lambda: httpx.get(f"{url}/api/v1/admin/dead-letters", headers=admin).json()["dead_letters"])

    browser.get(f"{url}/console/#pipeline")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait(browser, lambda: browser.find_element(By.ID, "key-form").is_displayed())
    browser.find_element(By.ID, "key-input").send_keys(api_keys["reader"], Keys.ENTER)
    wait(browser, lambda: "needs a key with the admin scope" in browser.find_element(By.ID, "dead-status").text)
    assert browser.find_element(By.ID, "key-grants").text == "Key reader: may read features; not write; no admin"
    assert "Dead letters\n1" in browser.find_element(By.ID, "readiness").text
    assert not browser.find_elements(By.CSS_SELECTOR, "#dead-letters button")

    browser.find_element(By.ID, "forget-key").click()
    wait(browser, lambda: browser.find_element(By.ID, "key-form").is_displayed())
    browser.find_element(By.ID, "key-input").send_keys(api_keys["operator"], Keys.ENTER)
    wait(browser, lambda: len(dead_letter_rows(browser)) == 1)
    assert "Kafka refused the event: too large" in browser.find_element(By.ID, "dead-letters").text
    screenshot(browser, "pipeline")
    no_serious_accessibility_violation(browser, "pipeline")

    sink.refusing = False
    browser.find_element(By.CSS_SELECTOR, "#dead-letters button.redrive").click()
    wait(browser, lambda: browser.find_element(By.ID, "dead-status").text.startswith("Re-driven: 1"))
    assert dead_letter_rows(browser) == []
    wait(browser, lambda: len(sink.delivered) == 1)


@pytest.mark.slow
def test_the_pipeline_page_without_keys_pages_through_and_redrives_all(browser: WebDriver, serve, backend) -> None:
    url, _, sink = poisoned(serve)
    entities = [
        {"entity_value": f"poison-{number}", "feature_list": [{"category": "user_features", "features": {"age": 1}}]}
        for number in range(21)
    ]
    body = {"meta": {"source": "prediction_service"}, "data": {"entity_type": "bright_uid", "entities": entities}}
    assert httpx.post(f"{url}/api/v1/items/batch", json=body).status_code == 200

    def dead_letters() -> int:
        return len(httpx.get(f"{url}/api/v1/admin/dead-letters", params={"limit": 100}).json()["dead_letters"])

    wait(browser, lambda: dead_letters() == 21)
    open_page(browser, url, "#pipeline", lambda: len(dead_letter_rows(browser)) == 20)
    assert "Store\nready sqlite" in browser.find_element(By.ID, "readiness").text
    first_page = dead_letter_rows(browser)
    browser.find_element(By.XPATH, "//button[text()='Next page']").click()
    wait(browser, lambda: len(dead_letter_rows(browser)) == 1)
    assert dead_letter_rows(browser)[0] not in first_page
    browser.find_element(By.XPATH, "//button[text()='Previous page']").click()
    wait(browser, lambda: dead_letter_rows(browser) == first_page)

    sink.refusing = False
    browser.find_element(By.ID, "redrive-all").click()
    wait(browser, lambda: browser.find_element(By.ID, "dead-status").text.startswith("Re-driven: 21"))
    wait(browser, lambda: len(sink.delivered) == 21)
