"""The service itself, started as deployed in a process of its own."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from devservers.processes import ROOT, free_port

START_SECONDS = 60
"""How long a start may take before it counts as failed: a few seconds alone, many more on two cores shared with
another test process and the servers of both."""


class ServiceProcess:
    """The service as deployed (`python -m serve`: uvicorn with the service's connection handling),
    started in `workdir` so no `.env*` file of the repository applies; its log (stdout and stderr) is
    kept in `workdir/service-<port>.log`. `env` holds its settings; it listens on a free port.

    It runs in a process group of its own, which `kill` and `sigkill` end whole, as a container's end
    does: with several workers (WEB_CONCURRENCY), killing the supervisor alone left its workers running,
    serving and measuring nothing, long after the tests."""

    def __init__(self, env: Mapping[str, str], workdir: Path, port: int | None = None) -> None:
        self.env = dict(env)
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"service-{self.port}.log"
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "serve.py")],
                cwd=self.workdir,
                env={**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise RuntimeError(f"service did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def workers(self) -> set[int]:
        """Its worker processes when it runs several (WEB_CONCURRENCY > 1): the supervisor's children that
        multiprocessing spawned (its resource tracker is a child too)."""
        pid = self.process.pid
        children = map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
        return {child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()}

    def restart(self) -> None:
        """Start it again on the same port and settings, after it stopped or was killed."""
        self.kill()
        self.process = self._start()

    def sigkill(self) -> None:
        """Stop it as a crash or the OOM killer would: no shutdown, no flush."""
        self._kill_group()
        self.process.wait()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """What Kubernetes and Docker send to stop a container."""
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        self.process.wait(timeout=30)

    def kill(self) -> None:
        self._kill_group()  # the workers too, even when the supervisor has already exited
        self.process.wait()
