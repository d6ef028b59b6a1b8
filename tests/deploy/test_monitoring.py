"""deploy/monitoring: the alert rules pass `promtool check rules` and their unit tests (every alert firing and
not firing), the PrometheusRule carries exactly those rules, the ServiceMonitor scrapes deploy/k8s's Service,
and the dashboard answers its four questions, templated on namespace and instance."""

import json
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import MONITORING, ROOT, Manifests, alert_rules, dashboard_panels

ROWS = ["Serving", "Freshness", "Event pipeline", "Store"]


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool comes with prometheus, from scripts/install_test_servers.sh"
    return subprocess.run([binary, *arguments], capture_output=True, text=True, cwd=MONITORING, timeout=60)


def load(name: str) -> Any:
    return yaml.safe_load((MONITORING / name).read_text())


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "dashboard.json").read_text())


def test_the_rules_pass_promtool_check() -> None:
    checked = promtool("check", "rules", "alerts.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_every_alert_has_unit_tests_that_pass() -> None:
    tested = promtool("test", "rules", *sorted(str(path) for path in (MONITORING / "tests").glob("*.yaml")))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    firing: set[str] = set()
    silent: set[str] = set()
    for path in (MONITORING / "tests").glob("*.yaml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert firing == names, names - firing
    assert silent == names, names - silent


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    runbooks = (ROOT / "docs" / "observability.md").read_text()
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert "for" in rule, rule["alert"]
        anchor = rule["annotations"]["runbook_url"].partition("#")[2]
        assert anchor == rule["alert"].lower()
        assert f"#### {rule['alert']}\n" in runbooks, f"docs/observability.md has no runbook for {rule['alert']}"


def test_the_prometheus_rule_carries_exactly_the_rules() -> None:
    resource = load("prometheusrule.yaml")
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"] == load("alerts.yaml")
    check = subprocess.run([sys.executable, "scripts/prometheus_rule.py", "--check"], cwd=ROOT, capture_output=True)
    assert check.returncode == 0, check.stderr.decode()


def test_the_service_monitor_scrapes_the_service_port(manifests: Manifests) -> None:
    monitor = load("servicemonitor.yaml")
    service = manifests["Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # Without a jobLabel the job is the Service's name: the one FeatureStoreDown watches.
    assert "jobLabel" not in monitor["spec"]
    assert 'job="' + service["metadata"]["name"] + '"' in alert_rules()[0]["expr"]


def test_the_kustomization_lists_every_resource_and_the_dashboard() -> None:
    kustomization = load("kustomization.yaml")
    assert set(kustomization["resources"]) == {"servicemonitor.yaml", "prometheusrule.yaml"}
    (dashboard_map,) = kustomization["configMapGenerator"]
    assert dashboard_map["files"] == ["feature-store.json=dashboard.json"]


def test_the_dashboard_has_four_rows_in_order(dashboard: dict[str, Any]) -> None:
    assert [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"] == ROWS
    assert dashboard["schemaVersion"] >= 39
    # Each row's panels sit below it and above the next row.
    tops = [panel["gridPos"]["y"] for panel in dashboard["panels"]]
    assert tops == sorted(tops)


def test_the_dashboard_is_templated_on_datasource_namespace_and_instance(dashboard: dict[str, Any]) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "instance"):
        assert variables[name]["definition"].startswith("label_values(") and variables[name]["includeAll"]
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_panel_queries_the_selected_namespace_and_instance(dashboard: dict[str, Any]) -> None:
    for panel in dashboard_panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            selectors = re.findall(r"feature_store_\w+(\{[^}]*\})?", expr)
            assert selectors and all('namespace=~"$namespace", instance=~"$instance"' in s for s in selectors), expr
            if "histogram_quantile" in expr:
                assert "sum by (le" in expr and "_bucket{" in expr, expr
            if "rate(" in expr:
                assert "[$__rate_interval]" in expr, expr
