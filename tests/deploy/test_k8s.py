"""The Kubernetes manifests: valid for the API server, and consistent with the app, its settings and the image."""

from pathlib import PurePosixPath
from typing import Any

import kubernetes_validate
import pytest

from core.settings import Settings
from tests.conftest import AppClient
from tests.deploy.conftest import K8S, Dockerfile

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")

Manifests = dict[str, dict[str, Any]]
SETTINGS_NAMES = {name.upper() for name in Settings.model_fields}


def pod(manifests: Manifests) -> dict[str, Any]:
    return manifests["Deployment"]["spec"]["template"]["spec"]


def container(manifests: Manifests) -> dict[str, Any]:
    (only,) = pod(manifests)["containers"]
    return only


def pod_labels(manifests: Manifests) -> dict[str, str]:
    return manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]


def container_port(manifests: Manifests, port: int | str) -> int:
    """A port as the container declares it, by number or name."""
    for declared in container(manifests)["ports"]:
        if port in (declared["containerPort"], declared["name"]):
            return declared["containerPort"]
    raise AssertionError(f"the container declares no port {port!r}")


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_every_resource_is_valid_for_the_api_server(manifests: Manifests, version: str) -> None:
    for kind, resource in manifests.items():
        if kind != "Kustomization":
            kubernetes_validate.validate(resource, version, strict=True)


def test_kustomization_lists_every_resource(manifests: Manifests) -> None:
    listed = set(manifests["Kustomization"]["resources"])
    assert listed == {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    (image,) = manifests["Kustomization"]["images"]
    assert image["name"] == container(manifests)["image"]


def test_probes_ask_the_app_on_the_served_port(manifests: Manifests, dockerfile: Dockerfile, client: AppClient) -> None:
    spec = container(manifests)
    paths = {probe: spec[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert paths["livenessProbe"] == "/api/v1/live"
    assert paths["readinessProbe"] == "/api/v1/ready"
    openapi_paths = client.app.openapi()["paths"]
    for probe, path in paths.items():
        assert "get" in openapi_paths[path], probe
        assert client.get(path).status_code == 200, probe
        assert container_port(manifests, spec[probe]["httpGet"]["port"]) == int(dockerfile.setting("port"))


def test_service_targets_the_port_uvicorn_serves(manifests: Manifests, dockerfile: Dockerfile) -> None:
    (port,) = manifests["Service"]["spec"]["ports"]
    assert container_port(manifests, port["targetPort"]) == int(dockerfile.setting("port"))
    assert manifests["Service"]["spec"]["selector"].items() <= pod_labels(manifests).items()


def test_configmap_holds_real_settings_as_strings(manifests: Manifests) -> None:
    data = manifests["ConfigMap"]["data"]
    assert set(data) <= SETTINGS_NAMES, set(data) - SETTINGS_NAMES
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values must be strings"
    env_names = {variable["name"] for variable in container(manifests)["env"]}
    assert env_names <= SETTINGS_NAMES


def test_the_shipped_configuration_passes_production_safety(manifests: Manifests, monkeypatch) -> None:
    """The ConfigMap plus what the Secret provides (SCHEMA_REGISTRY) is a production configuration that starts."""
    for name, value in manifests["ConfigMap"]["data"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SCHEMA_REGISTRY", "https://schema-registry.example:8081")
    settings = Settings(_env_file=None)
    assert settings.environment == "production"
    assert not settings.dynamodb_create_tables


def test_env_comes_from_the_configmap_and_a_secret(manifests: Manifests) -> None:
    sources = container(manifests)["envFrom"]
    assert {"configMapRef": {"name": manifests["ConfigMap"]["metadata"]["name"]}} in sources
    assert any("secretRef" in source for source in sources)


def test_restrictive_security_context(manifests: Manifests, dockerfile: Dockerfile) -> None:
    pod_security = pod(manifests)["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert str(pod_security["runAsUser"]) == dockerfile.arguments("USER")[-1].split(":")[0]
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(manifests)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container(manifests)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod(manifests)["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "a writable /tmp on a read-only root"


def test_api_keys_file_is_mounted_from_a_secret(manifests: Manifests) -> None:
    keys_dir = str(PurePosixPath(manifests["ConfigMap"]["data"]["API_KEYS_FILE"]).parent)
    mounts = {mount["mountPath"]: mount for mount in container(manifests)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod(manifests)["volumes"]}
    assert mounts[keys_dir]["readOnly"] is True
    assert "secret" in volumes[mounts[keys_dir]["name"]]


def test_termination_grace_outlasts_drain_requests_and_event_flush(
    manifests: Manifests, dockerfile: Dockerfile
) -> None:
    pre_stop = container(manifests)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert "command" not in container(manifests) and "args" not in container(manifests), "the image's CMD applies"
    graceful = float(
        manifests["ConfigMap"]["data"].get("GRACEFUL_SHUTDOWN_SECONDS", dockerfile.setting("graceful_shutdown_seconds"))
    )
    flush_default = Settings.model_fields["shutdown_flush_seconds"].default
    flush = float(manifests["ConfigMap"]["data"].get("SHUTDOWN_FLUSH_SECONDS", flush_default))
    assert pod(manifests)["terminationGracePeriodSeconds"] > float(pre_stop[1]) + graceful + flush


def test_resources_let_the_autoscaler_measure_cpu(manifests: Manifests) -> None:
    resources = container(manifests)["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    hpa = manifests["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", manifests["Deployment"]["metadata"]["name"])


def test_disruptions_and_rollouts_keep_pods_serving(manifests: Manifests) -> None:
    pdb = manifests["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels(manifests).items()
    assert manifests["HorizontalPodAutoscaler"]["spec"]["minReplicas"] > pdb["maxUnavailable"]
    assert manifests["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
