"""Real local servers for integration tests, started once per test session from `.servers/`
(installed by `scripts/install_test_servers.sh`, which `make test` runs)."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_BIN = ROOT / ".servers" / "bin"
NODE_MODULES = ROOT / ".servers" / "node_modules"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class ManagedServer:
    """A server process we started; stopped (and its log kept) at the end of the session."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        ready: Callable[[], bool],
        *,
        log_dir: Path,
        timeout: float = 20.0,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, cwd=cwd or ROOT)
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start; see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def pause(self) -> None:
        """Simulate an outage without losing the server's in-memory state."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_dynoxide(log_dir: Path) -> tuple[ManagedServer, str]:
    """A local DynamoDB API (in memory); returns the server and its endpoint URL."""
    port = free_port()
    command = [str(SERVER_BIN / "dynoxide"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = ManagedServer("dynoxide", command, lambda: port_open(port), log_dir=log_dir)
    return server, f"http://127.0.0.1:{port}"


def start_tansu(log_dir: Path) -> tuple[ManagedServer, str]:
    """A local Kafka API broker (in memory; a restart loses everything); returns it and its bootstrap address."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [
        str(SERVER_BIN / "tansu"), "broker", "--listener-url", url, "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]
    server = ManagedServer("tansu", command, lambda: port_open(port), log_dir=log_dir)
    return server, f"127.0.0.1:{port}"
