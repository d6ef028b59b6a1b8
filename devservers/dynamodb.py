"""Local DynamoDB APIs: Dynoxide in a process of its own, and moto in a thread of this one."""

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from devservers.processes import SERVER_BIN, ManagedServer, free_port, port_open


def start_dynoxide(log_dir: Path) -> tuple[ManagedServer, str]:
    """A local DynamoDB API (in memory); returns the server and its endpoint URL."""
    port = free_port()
    binary = str(SERVER_BIN / "dynoxide")

    def healthy() -> bool:
        return subprocess.run([binary, "healthcheck", "--port", str(port)], capture_output=True).returncode == 0

    server = ManagedServer(
        "dynoxide", [binary, "serve", "--host", "127.0.0.1", "--port", str(port)], healthy, log_dir=log_dir
    )
    return server, f"http://127.0.0.1:{port}"


class MotoServer:
    """moto's DynamoDB in server mode: pure Python, in a thread of this process.

    Requests are answered one at a time. moto undoes a cancelled transaction by restoring a copy of
    each table it touched, taken before it began, which would also undo another request's write that
    landed meanwhile; DynamoDB isolates transactions from every other write."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        # One line per request otherwise, in every test's captured log.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = DomainDispatcherApplication(create_backend_app)
        one_at_a_time = threading.Lock()

        def serialised(environ: dict, start_response: Callable) -> list[bytes]:
            with one_at_a_time:
                return list(app(environ, start_response))

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = make_server("127.0.0.1", self.port, serialised, True, request_handler=MotoRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="moto", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("moto did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


def start_moto() -> tuple[MotoServer, str]:
    """A second local DynamoDB API (moto, in memory), to cross-check what Dynoxide does; returns the
    server and its endpoint URL."""
    server = MotoServer()
    return server, server.url
