"""The metrics block of the settings: which exporters run, and what is refused at start-up."""

import pytest

from core.settings import Settings


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"metrics_exporter": "statsd,graphite"}, "unknown METRICS_EXPORTER graphite"),
        ({"metrics_exporter": "statsd"}, "METRICS_EXPORTER=statsd needs STATSD_HOST"),
        (
            {"metrics_exporter": "prometheus", "metrics_require_key": True},
            "METRICS_REQUIRE_KEY=true needs AUTH_ENABLED",
        ),
        ({"metrics_exporter": "prometheus", "metrics_path": "/api/v1/metrics"}, "METRICS_PATH must be outside /api"),
    ],
)
def test_metrics_settings_refused(values: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Settings(_env_file=None, **values)


def test_exporters_default_to_statsd_when_its_host_is_set() -> None:
    assert Settings(_env_file=None).metrics_exporters == frozenset()
    assert Settings(_env_file=None, statsd_host="localhost").metrics_exporters == {"statsd"}
    both = Settings(_env_file=None, statsd_host="localhost", metrics_exporter="Prometheus, statsd")
    assert both.metrics_exporters == {"statsd", "prometheus"}
    assert Settings(_env_file=None, statsd_host="localhost", metrics_exporter="").metrics_exporters == {"statsd"}
