"""Start the service: `python -m serve`. The one place uvicorn's options are built, from `Settings`
(`core/http_server.py`), so `make run`, the image and Kubernetes serve with the same connection limits,
keep-alive and shutdown timeouts, configured like every other setting."""

import logging
import os
import signal

import uvicorn
from uvicorn.supervisors import Multiprocess

from core.http_server import server_options
from core.settings import Settings
from core.startup_errors import exit_on_configuration_error

logger = logging.getLogger("uvicorn.error")


class ReloadingMultiprocess(Multiprocess):
    """uvicorn's supervisor of several workers, except that `SIGHUP` makes each worker re-read its configuration
    files (components/config_reload.py) where uvicorn would replace every worker: no request is cut, no
    connection dropped, no cache or pool rebuilt, as with one worker. A worker still starting is skipped: it
    reads the files as it starts."""

    def handle_hup(self) -> None:
        reloading = []
        for process in list(self.processes):
            if process.pid is not None and process.is_ready(timeout=1):
                os.kill(process.pid, signal.SIGHUP)
                reloading.append(process.pid)
        logger.info("Received SIGHUP, workers %s reload their configuration files.", reloading)


def main() -> None:
    with exit_on_configuration_error():
        serve()


def serve() -> None:
    settings = Settings()
    if "prometheus" in settings.metrics_exporters and settings.web_concurrency > 1:
        # Before any worker starts (and imports prometheus-client): their shared directory, emptied.
        from core.metrics.prometheus import prepare_multiprocess

        prepare_multiprocess(settings.metrics_multiproc_dir)
    if settings.web_concurrency == 1:
        uvicorn.run(**server_options(settings))
        return
    # What uvicorn.run does with several workers, with the supervisor above.
    config = uvicorn.Config(**server_options(settings))
    try:
        ReloadingMultiprocess(config, sockets=[config.bind_socket()]).run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
