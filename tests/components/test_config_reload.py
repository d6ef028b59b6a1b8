"""Live reload of the keys, grants and registry files, swapped the way Kubernetes updates a mounted
ConfigMap or Secret (a new directory behind the `..data` symlink); an invalid file is kept out."""

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.auth import hash_key, new_key
from devservers import LocalIssuer, ServiceProcess
from tests.components.events.kafka_helpers import wait_for
from tests.conftest import API_KEYS, GRANTS, AppClient
from tests.factories import write_body

pytestmark = pytest.mark.backends("sqlite")

ITEM = "/api/v1/get/item/user-123/user_features"
REGISTRY = """
categories:
  user_features: {}
  credit_features: {}
"""


class MountedConfig:
    """Files laid out as Kubernetes mounts them: `<name>` -> `..data/<name>`, and `..data` a symlink an
    update swaps atomically to a new directory."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.root = root
        root.mkdir()
        self.version = 0
        self.update(files)
        for name in files:
            (root / name).symlink_to(Path("..data") / name)

    def update(self, files: dict[str, str]) -> None:
        self.version += 1
        target = self.root / f"..2026_{self.version}"
        target.mkdir()
        for name, text in files.items():
            (target / name).write_text(text)
        staged = self.root / "..data_tmp"
        staged.symlink_to(target.name)
        os.replace(staged, self.root / "..data")

    def path(self, name: str) -> str:
        return str(self.root / name)


def keys_file(**keys: str) -> str:
    """A keys file granting each named key (by name in API_KEYS) what that entry grants."""
    return json.dumps([{"name": name, "sha256": hash_key(key), **API_KEYS[name]} for name, key in keys.items()])


def reader(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def configuration(client: AppClient) -> dict[str, Any]:
    return client.get("/api/v1/ready").json()["checks"]["configuration"]


@pytest.fixture
def keys() -> dict[str, str]:
    return {"old": new_key(), "new": new_key()}


@pytest.fixture
def mounted(tmp_path: Path, keys: dict[str, str]) -> MountedConfig:
    return MountedConfig(tmp_path / "secret", {"keys.json": keys_file(reader=keys["old"])})


@pytest.fixture
def client(make_client, mounted: MountedConfig) -> AppClient:
    return make_client(auth_enabled=True, api_keys_file=mounted.path("keys.json"), config_reload_seconds=0.05)


def test_a_swapped_keys_file_is_used_without_a_restart(
    client: AppClient, mounted: MountedConfig, keys: dict[str, str]
) -> None:
    assert client.get(ITEM, headers=reader(keys["old"])).status_code == 404
    before = configuration(client)["API_KEYS_FILE"]
    assert before["last_reload"] == "loaded"
    mounted.update({"keys.json": keys_file(reader=keys["new"])})
    wait_for(lambda: client.get(ITEM, headers=reader(keys["new"])).status_code == 404)
    assert client.get(ITEM, headers=reader(keys["old"])).status_code == 401
    after = configuration(client)["API_KEYS_FILE"]
    assert after["last_reload"] == "reloaded" and after["fingerprint"] != before["fingerprint"]


@pytest.mark.parametrize(
    ("invalid", "named"),
    [
        ("[not json", "line 1 column 2"),
        (json.dumps([{"name": "reader", "sha256": "abc", "scopes": ["features:read"]}], indent=2), "line 4, entry 0"),
        (
            json.dumps(
                [
                    {
                        "name": "w",
                        "sha256": "a" * 64,
                        "scopes": ["features:write"],
                        "sources": ["s"],
                        "categories": ["x"],
                    }
                ],
                indent=2,
            ),
            "line 11, key 'w' names categories not allowed",
        ),
        (
            json.dumps([{"name": "r", "sha256": hash_key(key), "scopes": ["features:read"]} for key in "ab"], indent=2),
            "line 10, entry 1: two keys share a name",
        ),
        ("[]", "holds no keys"),
    ],
)
def test_an_invalid_keys_file_is_kept_out(
    client: AppClient, mounted: MountedConfig, keys: dict[str, str], invalid: str, named: str, caplog
) -> None:
    fingerprint = configuration(client)["API_KEYS_FILE"]["fingerprint"]
    mounted.update({"keys.json": invalid})
    wait_for(lambda: configuration(client)["API_KEYS_FILE"]["last_reload"] == "refused")
    state = configuration(client)["API_KEYS_FILE"]
    assert state["fingerprint"] == fingerprint and "API_KEYS_FILE" in state["error"]
    assert named in state["error"], "the refusal names the line"
    assert client.get(ITEM, headers=reader(keys["old"])).status_code == 404
    refusals = [record for record in caplog.records if record.name == "feature_store.config"]
    assert refusals and refusals[-1].file == "API_KEYS_FILE" and "keys.json" in refusals[-1].path
    assert keys["old"] not in caplog.text
    # Fixed, it is taken.
    mounted.update({"keys.json": keys_file(reader=keys["new"])})
    wait_for(lambda: client.get(ITEM, headers=reader(keys["new"])).status_code == 404)
    assert "error" not in configuration(client)["API_KEYS_FILE"]


def test_a_registry_change_applies_to_writes_reads_and_discovery(make_client, tmp_path: Path) -> None:
    mounted = MountedConfig(tmp_path / "config", {"registry.yaml": REGISTRY})
    client = make_client(feature_registry_file=mounted.path("registry.yaml"), config_reload_seconds=0.05)
    body = write_body()
    body["data"]["feature_list"] = [{"category": "new_features", "features": {"x": 1}}]
    assert client.post("/api/v1/items", json=body).status_code == 422
    etag = client.get("/api/v1/registry").headers["etag"]
    mounted.update({"registry.yaml": REGISTRY + "  new_features: {}\n"})
    wait_for(lambda: client.post("/api/v1/items", json=body).status_code == 200)
    assert client.get("/api/v1/registry").headers["etag"] != etag
    assert client.get("/api/v1/get/item/user-123/new_features").status_code == 200
    assert configuration(client)["FEATURE_REGISTRY_FILE"]["fingerprint"] == client.get("/api/v1/registry").headers[
        "etag"
    ].strip('"')


def test_an_invalid_registry_is_kept_out_naming_the_line(make_client, tmp_path: Path) -> None:
    mounted = MountedConfig(tmp_path / "config", {"registry.yaml": REGISTRY})
    client = make_client(feature_registry_file=mounted.path("registry.yaml"), config_reload_seconds=0.05)
    etag = client.get("/api/v1/registry").headers["etag"]
    mounted.update({"registry.yaml": REGISTRY + "  new_features:\n    features:\n      age: {type: integer}\n"})
    wait_for(lambda: configuration(client)["FEATURE_REGISTRY_FILE"]["last_reload"] == "refused")
    error = configuration(client)["FEATURE_REGISTRY_FILE"]["error"]
    assert "line 7, category 'new_features', feature 'age', field 'type'" in error
    mounted.update({"registry.yaml": REGISTRY + "  new_features: {entity_types: [merchant]}\n"})
    wait_for(lambda: "merchant" in configuration(client)["FEATURE_REGISTRY_FILE"]["error"])
    assert (
        "line 5, category 'new_features', field 'entity_types'"
        in configuration(client)["FEATURE_REGISTRY_FILE"]["error"]
    )
    assert client.get("/api/v1/registry").headers["etag"] == etag


def test_a_registry_that_drops_a_category_a_key_names_is_refused(
    make_client, tmp_path: Path, keys: dict[str, str]
) -> None:
    writer = {"writer": keys["old"]}
    mounted = MountedConfig(tmp_path / "config", {"registry.yaml": REGISTRY, "keys.json": keys_file(**writer)})
    client = make_client(
        feature_registry_file=mounted.path("registry.yaml"),
        auth_enabled=True,
        api_keys_file=mounted.path("keys.json"),
        config_reload_seconds=0.05,
    )
    mounted.update({"registry.yaml": "categories:\n  user_features: {}\n", "keys.json": keys_file(**writer)})
    wait_for(lambda: "error" in configuration(client)["API_KEYS_FILE"])
    assert "credit_features" in configuration(client)["API_KEYS_FILE"]["error"]
    assert client.post("/api/v1/items", json=write_body(), headers=reader(keys["old"])).status_code == 200


def test_a_swapped_grants_file_applies_to_tokens(make_client, tmp_path: Path, oidc_issuer: LocalIssuer) -> None:
    mounted = MountedConfig(tmp_path / "config", {"grants.yaml": json.dumps(GRANTS)})
    client = make_client(
        auth_enabled=True,
        auth_jwt_issuer=oidc_issuer.url,
        auth_jwt_audience=oidc_issuer.audience,
        auth_jwt_grants_file=mounted.path("grants.yaml"),
        config_reload_seconds=0.05,
    )
    newcomer = {"Authorization": f"Bearer {oidc_issuer.token(sub='newcomer')}"}
    assert client.get(ITEM, headers=newcomer).status_code == 403
    grant = {"name": "newcomer", "match": {"sub": "newcomer"}, "scopes": ["features:read"]}
    mounted.update({"grants.yaml": json.dumps([*GRANTS, grant])})
    wait_for(lambda: client.get(ITEM, headers=newcomer).status_code == 404)
    mounted.update({"grants.yaml": "- {name: broken}"})
    wait_for(lambda: configuration(client)["AUTH_JWT_GRANTS_FILE"]["last_reload"] == "refused")
    assert client.get(ITEM, headers=newcomer).status_code == 404


def test_sighup_reloads_every_file(make_client, mounted: MountedConfig, keys: dict[str, str]) -> None:
    """What the SIGHUP handler runs; the file watch is off here, so only the reload can pick the change up."""
    client = make_client(auth_enabled=True, api_keys_file=mounted.path("keys.json"), config_reload_seconds=0)
    mounted.update({"keys.json": keys_file(reader=keys["new"])})
    assert client.get(ITEM, headers=reader(keys["new"])).status_code == 401
    assert client.run(client.app.state.runtime.config.reload, "SIGHUP") is True
    assert client.get(ITEM, headers=reader(keys["new"])).status_code == 404


@pytest.mark.parametrize(("workers", "trigger"), [("1", "SIGHUP"), ("2", "SIGHUP"), ("2", "watch")])
def test_every_worker_of_a_real_server_reloads(
    tmp_path: Path, mounted: MountedConfig, keys: dict[str, str], workers: str, trigger: str
) -> None:
    """One process catches SIGHUP itself; with several, the supervisor passes SIGHUP on to each worker, which
    reloads in place (uvicorn's own supervisor would replace them). Without a signal each worker watches the
    files and reloads on its own."""
    env = {
        "STORE_BACKEND": "sqlite",
        "SQLITE_PATH": str(tmp_path / "features.db"),
        "LOG_LEVEL": "WARNING",
        "AUTH_ENABLED": "true",
        "API_KEYS_FILE": mounted.path("keys.json"),
        "CONFIG_RELOAD_SECONDS": "0" if trigger == "SIGHUP" else "0.2",
        "WEB_CONCURRENCY": workers,
    }
    server = ServiceProcess(env, tmp_path)
    try:
        assert httpx.get(server.url + ITEM, headers=reader(keys["old"])).status_code == 404
        started: set[int] = set()
        if workers != "1":
            wait_for(lambda: len(server.workers()) == int(workers), timeout=20)
            started = server.workers()
        mounted.update({"keys.json": keys_file(reader=keys["new"])})
        if trigger == "SIGHUP":
            server.process.send_signal(signal.SIGHUP)

        def every_worker_takes_the_new_key() -> bool:
            return all(httpx.get(server.url + ITEM, headers=reader(keys["new"])).status_code == 404 for _ in range(8))

        wait_for(every_worker_takes_the_new_key, timeout=20)
        assert server.process.poll() is None
        if workers != "1":
            assert server.workers() == started, "the workers reloaded in place, none was replaced"
    finally:
        server.kill()
