"""The Kubernetes manifests, as each overlay renders them: valid for the API server, and consistent with the app,
its settings and the image."""

import shutil
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import opentelemetry.sdk.environment_variables as otel_variables
import pytest
import yaml
from pydantic import SecretStr

from components.features.registry import Registry
from core.settings import Settings
from tests.conftest import AppClient
from tests.deploy.conftest import K8S, Dockerfile, Manifests, kustomize

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")

SETTINGS_NAMES = {name.upper() for name in Settings.model_fields}
OTEL_NAMES = {name for name in vars(otel_variables) if name.startswith("OTEL_")}
"""What the OpenTelemetry SDK reads from the environment itself (tracing's configuration, not settings)."""
SECRET_SETTINGS = {name.upper() for name, field in Settings.model_fields.items() if field.annotation is SecretStr} | {
    "SCHEMA_REGISTRY",
    "KAFKA_PRODUCER_CONFIG",
}
"""Settings that hold credentials: the registry's URL may carry them, the producer's config a client secret."""


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


def mount_of(manifests: Manifests, directory: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The container's mount of `directory` and the pod volume it mounts."""
    mounts = {mount["mountPath"]: mount for mount in container(manifests)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod(manifests)["volumes"]}
    return mounts[directory], volumes[mounts[directory]["name"]]


PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"
"""The API of the custom resources deploy/monitoring adds (ServiceMonitor, PrometheusRule)."""
MONITORING_KIT = "../../monitoring"
"""The base's one resource outside it: deploy/monitoring's kustomization."""


def production_ready_settings(manifests: Manifests, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The settings a pod starts with: the ConfigMap, what the Secrets provide, and the mounted registry."""
    for name, value in manifests.settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SCHEMA_REGISTRY", "https://schema-registry.example:8081")
    registry = tmp_path / "registry.yaml"
    registry.write_text(manifests.config_map("feature-store-registry")["data"]["registry.yaml"])
    monkeypatch.setenv("FEATURE_REGISTRY_FILE", str(registry))
    return Settings(_env_file=None)


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_every_resource_is_valid_for_the_api_server(manifests: Manifests, version: str) -> None:
    for resource in manifests.objects:
        if resource["apiVersion"] == PROMETHEUS_OPERATOR:
            continue  # custom resources: tests/deploy/test_monitoring.py checks them
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_custom_resources_are_the_prometheus_operators_monitoring(manifests: Manifests) -> None:
    custom = sorted(item["kind"] for item in manifests.objects if item["apiVersion"] == PROMETHEUS_OPERATOR)
    assert custom == ["PrometheusRule", "ServiceMonitor"]


def test_the_base_lists_every_file_it_holds() -> None:
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    generated = {source for generator in base["configMapGenerator"] for source in generator.get("files", [])}
    generated |= {source for generator in base["configMapGenerator"] for source in generator.get("envs", [])}
    held = {path.name for path in (K8S / "base").iterdir()} - {"kustomization.yaml"}
    assert set(base["resources"]) - {MONITORING_KIT} | generated == held


def test_each_overlay_deploys_its_environment_to_a_namespace_of_its_own(manifests: Manifests) -> None:
    assert manifests.settings["ENVIRONMENT"] == manifests.overlay
    namespaces = {item["metadata"]["namespace"] for item in manifests.objects}
    assert len(namespaces) == 1 and None not in namespaces
    assert not [item for item in manifests.objects if item["kind"] in ("Secret", "Namespace")]


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


def test_every_variable_set_is_a_real_setting(manifests: Manifests) -> None:
    data = manifests.settings
    assert set(data) <= SETTINGS_NAMES | OTEL_NAMES, set(data) - SETTINGS_NAMES - OTEL_NAMES
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values must be strings"
    env_names = {variable["name"] for variable in container(manifests)["env"]}
    assert env_names <= SETTINGS_NAMES, env_names - SETTINGS_NAMES


def test_secrets_come_by_reference_only(manifests: Manifests) -> None:
    assert {"KAFKA_SASL_PASSWORD", "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"} <= SECRET_SETTINGS
    assert not set(manifests.settings) & SECRET_SETTINGS
    assert not {variable["name"] for variable in container(manifests)["env"]} & SECRET_SETTINGS
    sources = container(manifests)["envFrom"]
    assert {"configMapRef": {"name": manifests.config_map("feature-store-config")["metadata"]["name"]}} in sources
    assert {"secretRef": {"name": "feature-store-env"}} in sources


def test_the_shipped_configuration_passes_its_environments_safety(
    manifests: Manifests, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ConfigMap, the Secret's SCHEMA_REGISTRY and the registry make a configuration that starts."""
    settings = production_ready_settings(manifests, monkeypatch, tmp_path)
    assert settings.environment == manifests.overlay
    assert settings.store_backend == "dynamodb"
    assert not settings.dynamodb_create_tables
    assert Registry.from_settings(settings).categories


def test_the_registry_is_mounted_read_only_where_its_setting_points(manifests: Manifests) -> None:
    path = PurePosixPath(manifests.settings["FEATURE_REGISTRY_FILE"])
    mount, volume = mount_of(manifests, str(path.parent))
    assert mount["readOnly"] is True
    registry = manifests.config_map("feature-store-registry")
    assert volume["configMap"]["name"] == registry["metadata"]["name"]
    assert registry["data"][path.name] == (K8S / "base" / "registry.yaml").read_text()


def test_a_registry_or_settings_change_rolls_the_pods(tmp_path: Path) -> None:
    """The generated ConfigMaps are named after their content, so the pod template changes with them."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    shutil.copytree(K8S.parent / "monitoring", tmp_path / "monitoring")

    def pod_template() -> dict[str, Any]:
        (deployment,) = [item for item in kustomize(copy / "overlays" / "production") if item["kind"] == "Deployment"]
        return deployment["spec"]["template"]

    before = pod_template()
    registry = copy / "base" / "registry.yaml"
    registry.write_text(registry.read_text() + "  new_features: {}\n")
    after_registry = pod_template()
    assert after_registry != before
    settings = copy / "overlays" / "production" / "settings.env"
    settings.write_text(settings.read_text() + "LOG_LEVEL=WARNING\n")
    assert pod_template() != after_registry


def test_restrictive_security_context(manifests: Manifests, dockerfile: Dockerfile) -> None:
    pod_security = pod(manifests)["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert str(pod_security["runAsUser"]) == dockerfile.arguments("USER")[-1].split(":")[0]
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(manifests)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    _, tmp = mount_of(manifests, "/tmp")
    assert "emptyDir" in tmp, "a writable /tmp on a read-only root"


def test_api_keys_file_is_mounted_from_a_secret(manifests: Manifests) -> None:
    mount, volume = mount_of(manifests, str(PurePosixPath(manifests.settings["API_KEYS_FILE"]).parent))
    assert mount["readOnly"] is True
    assert "secret" in volume


def test_termination_grace_outlasts_drain_requests_and_event_flush(
    manifests: Manifests, dockerfile: Dockerfile
) -> None:
    pre_stop = container(manifests)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert "command" not in container(manifests) and "args" not in container(manifests), "the image's CMD applies"
    data = manifests.settings
    graceful = float(data.get("GRACEFUL_SHUTDOWN_SECONDS", dockerfile.setting("graceful_shutdown_seconds")))
    flush = float(data.get("SHUTDOWN_FLUSH_SECONDS", Settings.model_fields["shutdown_flush_seconds"].default))
    assert pod(manifests)["terminationGracePeriodSeconds"] > float(pre_stop[1]) + graceful + flush


def test_resources_let_the_autoscaler_measure_cpu(manifests: Manifests) -> None:
    resources = container(manifests)["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    hpa = manifests["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", manifests["Deployment"]["metadata"]["name"])
    assert "replicas" not in manifests["Deployment"]["spec"], "the autoscaler owns the replica count"


def test_disruptions_and_rollouts_keep_pods_serving(manifests: Manifests) -> None:
    pdb = manifests["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels(manifests).items()
    assert manifests["HorizontalPodAutoscaler"]["spec"]["minReplicas"] > pdb["maxUnavailable"]
    assert manifests["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    zones = [spread["topologyKey"] for spread in pod(manifests)["topologySpreadConstraints"]]
    assert "topology.kubernetes.io/zone" in zones


def allowed_egress(manifests: Manifests, protocol: str = "TCP") -> set[int]:
    """Every port the NetworkPolicy lets the pods reach, whatever the destination."""
    ports: set[int] = set()
    for rule in manifests["NetworkPolicy"]["spec"]["egress"]:
        for port in rule["ports"]:
            if port.get("protocol", "TCP") == protocol:
                ports.update(range(port["port"], port.get("endPort", port["port"]) + 1))
    return ports


def test_network_policy_admits_only_the_service_port(manifests: Manifests, dockerfile: Dockerfile) -> None:
    """The API, the probes and the metrics path are all served on the one port; nothing else comes in."""
    policy = manifests["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels(manifests).items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = policy["ingress"]
    assert [container_port(manifests, port["port"]) for port in rule["ports"]] == [int(dockerfile.setting("port"))]


def test_network_policy_lets_out_what_the_configuration_reaches(manifests: Manifests) -> None:
    data = manifests.settings
    assert {53, 443} <= allowed_egress(manifests), "DNS, and DynamoDB and STS over HTTPS"
    assert 53 in allowed_egress(manifests, "UDP")
    brokers = {int(address.rpartition(":")[2]) for address in data["KAFKA_BROKER_URL"].split(",")}
    assert brokers <= allowed_egress(manifests), "the Kafka brokers"
    assert {8081, 443} <= allowed_egress(manifests), "a Schema Registry on its usual port or HTTPS"
    assert int(data["STATSD_PORT"]) in allowed_egress(manifests, "UDP"), "the node's StatsD agent"
    otlp = urlsplit(data.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"))
    assert {otlp.port, 4317, 4318} <= allowed_egress(manifests), "the OTLP collector"
