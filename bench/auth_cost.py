"""What a JWT caller costs: the service's CPU per single-category read with an API key and with an OIDC
token from a local issuer, measured side by side in one run (as `metrics_cost` does for exporters).

The token is verified once and then found by its hash until it expires, so a caller's later requests
should cost what a key's do; the bound allows 10%.
"""

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.auth import hash_key, new_key
from devservers import LocalIssuer

JWT_BOUND = 1.10
"""A JWT may add at most 10% to the CPU of a single-category read over an API key."""


def variants(issuer: LocalIssuer, work: Path) -> dict[str, tuple[dict[str, str], str]]:
    """Per variant: the service's settings and the Authorization header its load sends."""
    key = new_key()
    keys_file = work / "bench-keys.json"
    keys_file.write_text(json.dumps([{"name": "bench", "sha256": hash_key(key), "scopes": ["features:read"]}]))
    grants_file = work / "bench-grants.yaml"
    grants_file.write_text(json.dumps([{"name": "bench", "match": {"sub": "bench"}, "scopes": ["features:read"]}]))
    auth = {"AUTH_ENABLED": "true", "API_KEYS_FILE": str(keys_file)}
    jwt = auth | {
        "AUTH_JWT_ISSUER": issuer.url,
        "AUTH_JWT_AUDIENCE": issuer.audience,
        "AUTH_JWT_GRANTS_FILE": str(grants_file),
    }
    token = issuer.token(sub="bench", exp=int(time.time()) + 24 * 3600)  # outlives the run
    return {"api_key": (auth, f"Bearer {key}"), "jwt": (jwt, f"Bearer {token}")}


def compare(
    start: Callable[[str, dict[str, str]], Any],
    cpu_ms_per_request: Callable[[Any, str], float | None],
    rounds: int,
    work: Path,
) -> dict[str, Any]:
    """`start(name, env)` starts a variant's service and waits until it is ready; `cpu_ms_per_request(service,
    authorization)` loads it once and measures. The variants alternate round after round."""
    issuer = LocalIssuer()
    try:
        chosen = variants(issuer, work)
        services = {name: start(name, env) for name, (env, _) in chosen.items()}
        try:
            samples: dict[str, list[float]] = {name: [] for name in services}
            for _ in range(rounds):
                for name, service in services.items():
                    measured = cpu_ms_per_request(service, chosen[name][1])
                    if measured is not None:
                        samples[name].append(measured)
        finally:
            for service in services.values():
                service.stop()
    finally:
        issuer.stop()
    medians = {name: round(statistics.median(values), 4) for name, values in samples.items() if values}
    key = medians.get("api_key")
    ratio = round(medians["jwt"] / key, 3) if key and "jwt" in medians else None
    return {
        "scenario": "read_single",
        "backend": "sqlite",
        "cpu_ms_per_request": medians,
        "jwt_to_api_key": ratio,
        "samples": samples,
        "bound": JWT_BOUND,
        "met": None if ratio is None else ratio <= JWT_BOUND,
    }


def print_table(cost: dict[str, Any]) -> None:
    print("\nJWT callers' cost, service CPU per single-category read at full load (embedded store; median of rounds):")
    header = f"{'caller':<12}{'cpu ms/req':>12}{'vs key':>9}{'target':>9}  result"
    print(header)
    print("-" * len(header))
    for name, value in cost["cpu_ms_per_request"].items():
        shown, bound, verdict = "", "", ""
        if name == "jwt" and cost["jwt_to_api_key"] is not None:
            shown, bound = f"{cost['jwt_to_api_key']:.3f}x", f"<={cost['bound']}x"
            verdict = "met" if cost["met"] else "not met"
        print(f"{name:<12}{value:>12.4f}{shown:>9}{bound:>9}  {verdict}")
