"""What every local server shares: free ports, the repository's paths, and `ManagedServer`, a process
started, waited for until ready, paused, resumed and stopped."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_BIN = ROOT / ".servers" / "bin"
NODE_MODULES = ROOT / ".servers" / "node_modules"


def running(pid: int) -> bool:
    """Whether `pid` runs: not gone, and not a zombie waiting for its parent to read its status (Linux /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


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


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, cwd=cwd or ROOT, env=None if env is None else dict(env)
        )
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start; see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def pause(self) -> None:
        """Simulate an outage without losing the server's in-memory state; returns once it is stopped
        (the signal is asynchronous, and a request answered just after it would spoil the outage)."""
        os.kill(self.process.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while self._state() != "T":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not stop")
            time.sleep(0.001)

    def _state(self) -> str:
        return Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

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
