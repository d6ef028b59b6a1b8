"""Start the service: `python -m serve`. The one place uvicorn's options are built, from `Settings`
(`core/http_server.py`), so `make run`, the image and Kubernetes serve with the same connection limits,
keep-alive and shutdown timeouts, configured like every other setting."""

import uvicorn

from core.http_server import server_options
from core.settings import Settings
from core.startup_errors import exit_on_configuration_error


def main() -> None:
    with exit_on_configuration_error():
        serve()


def serve() -> None:
    settings = Settings()
    if "prometheus" in settings.metrics_exporters and settings.web_concurrency > 1:
        # Before any worker starts (and imports prometheus-client): their shared directory, emptied.
        from core.metrics.prometheus import prepare_multiprocess

        prepare_multiprocess(settings.metrics_multiproc_dir)
    uvicorn.run(**server_options(settings))


if __name__ == "__main__":
    main()
