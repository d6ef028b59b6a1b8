"""Write deploy/monitoring/prometheusrule.yaml: the alert rules of deploy/monitoring/alerts.yaml wrapped as a
PrometheusRule for the Prometheus Operator, so the rules have one source.

    make prometheus-rule                # rewrite prometheusrule.yaml
    make prometheus-rule ARGS=--check   # exit 1 when it differs from alerts.yaml's rules
"""

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
RULES_PATH = MONITORING / "alerts.yaml"
RESOURCE_PATH = MONITORING / "prometheusrule.yaml"
HEADER = (
    "# Generated from alerts.yaml by scripts/prometheus_rule.py (make prometheus-rule): edit alerts.yaml instead.\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the longer PromQL expressions) as literal blocks, as alerts.yaml writes them."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _string)


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "feature-store-api", "labels": {"app.kubernetes.io/name": "feature-store-api"}},
        "spec": {"groups": rules["groups"]},
    }


def render(rules_text: str) -> str:
    resource = prometheus_rule(yaml.safe_load(rules_text))
    return HEADER + yaml.dump(resource, Dumper=_Dumper, sort_keys=False, width=200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make prometheus-rule", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    text = render(RULES_PATH.read_text(encoding="utf-8"))
    if args.check:
        if not RESOURCE_PATH.exists() or RESOURCE_PATH.read_text(encoding="utf-8") != text:
            print(f"{RESOURCE_PATH.name} is not alerts.yaml's rules: run make prometheus-rule", file=sys.stderr)
            return 1
        return 0
    RESOURCE_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {RESOURCE_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
