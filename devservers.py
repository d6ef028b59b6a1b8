"""Local servers for the tests and the benchmark: Dynoxide (the DynamoDB API), Tansu (the Kafka API)
and Etsy statsd, run from `.servers/` (installed by `scripts/install_test_servers.sh`, which
`make test` and `make bench` run) on free ports, librdkafka's mock Kafka cluster in a process of its
own (`python devservers.py kafka-mock`), stunnel4 putting TLS in front of Tansu with certificates
made by openssl, and the service itself (`serve.py`) in its own process.
Development only: not part of the service's image."""

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent
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


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_INSPECT_ENTRY = re.compile(r"(?:'([^']*)'|([A-Za-z_$][\w$]*)): (\[[^\]]*\]|[^,\s}]+)")


def parse_node_inspect(text: str) -> dict[str, float | list[float]]:
    """Read the `util.inspect` dump statsd's admin port answers with: `{ 'a.b': 1, 'c': [ 2, 3 ] }`."""
    parsed: dict[str, float | list[float]] = {}
    for quoted, bare, value in _INSPECT_ENTRY.findall(text):
        if value.startswith("["):
            parsed[quoted or bare] = [float(number) for number in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", value)]
        else:
            parsed[quoted or bare] = float(value)
    return parsed


class StatsdServer:
    """Etsy statsd on free ports, never flushing, read back through its admin TCP port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_udp_port()
        self.mgmt_port = free_port()
        config = log_dir / "statsd-config.js"
        config.write_text(
            json.dumps(
                {
                    "address": "127.0.0.1",
                    "port": self.port,
                    "mgmt_address": "127.0.0.1",
                    "mgmt_port": self.mgmt_port,
                    "flushInterval": 3_600_000,
                    "backends": [],
                    "deleteIdleStats": False,
                }
            )
        )
        stats_js = NODE_MODULES / "statsd" / "stats.js"
        self.server = ManagedServer(
            "statsd", ["node", str(stats_js), str(config)], lambda: port_open(self.mgmt_port), log_dir=log_dir
        )

    def read(self, kind: str) -> dict[str, float | list[float]]:
        """`counters`, `timers` or `gauges`, keyed as statsd stores them."""
        with socket.create_connection(("127.0.0.1", self.mgmt_port), timeout=5) as sock:
            sock.sendall(kind.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"END\n\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        return parse_node_inspect(answer.decode())

    def stop(self) -> None:
        self.server.stop()


class ServiceProcess:
    """The service as deployed (`python -m serve`: uvicorn with the service's connection handling),
    started in `workdir` so no `.env*` file of the repository applies; its log (stdout and stderr) is
    kept in `workdir/service-<port>.log`. `env` holds its settings; it listens on a free port."""

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
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                raise RuntimeError(f"service did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def restart(self) -> None:
        """Start it again on the same port and settings, after it stopped or was killed."""
        self.kill()
        self.process = self._start()

    def sigkill(self) -> None:
        """Stop it as a crash or the OOM killer would: no shutdown, no flush."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> None:
        """What Kubernetes and Docker send to stop a container."""
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


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


def start_tansu(log_dir: Path) -> tuple[ManagedServer, str]:
    """A local Kafka API broker (in memory; a restart loses everything); returns it and its bootstrap
    address. It gets a bare environment: Tansu reads SCHEMA_REGISTRY and others from it."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [
        str(SERVER_BIN / "tansu"),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    server = ManagedServer(
        "tansu", command, lambda: port_open(port), log_dir=log_dir, env={"PATH": os.environ.get("PATH", "")}
    )
    return server, f"127.0.0.1:{port}"


KAFKA_MOCK_BOOTSTRAP = re.compile(r"Mock cluster \S+ bootstrap\.servers=(\S+)")


def run_kafka_mock_cluster(brokers: int = 3) -> None:
    """The body of the mock cluster's own process: librdkafka's mock brokers live in the threads of
    a client created with `test.mock.num.brokers`, for as long as that client does. Its bootstrap
    addresses appear only in its `debug=mock` log; the one line that names them is printed. Topics are
    created on first produce (CreateTopics is not supported)."""
    from confluent_kafka import Producer

    class Bootstrap(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if KAFKA_MOCK_BOOTSTRAP.search(message):
                sys.stdout.write(message + "\n")
                sys.stdout.flush()

    log = logging.getLogger("kafka-mock")
    log.addHandler(Bootstrap())
    log.setLevel(logging.DEBUG)
    cluster = Producer({"test.mock.num.brokers": brokers, "debug": "mock", "logger": log})
    while True:
        cluster.poll(1.0)


def start_kafka_mock(log_dir: Path, brokers: int = 3) -> tuple[ManagedServer, str]:
    """librdkafka's own mock cluster in a process of its own (so SIGSTOP is an outage, SIGKILL of the
    service leaves it alone); returns it and its bootstrap addresses. Unlike Tansu it keeps every message
    it acknowledged, so the tests that prove no event is lost run on it."""
    log_path = log_dir / "kafka-mock.log"

    def bootstrap() -> str | None:
        match = KAFKA_MOCK_BOOTSTRAP.search(log_path.read_text()) if log_path.exists() else None
        return match.group(1) if match else None

    command = [sys.executable, str(ROOT / "devservers.py"), "kafka-mock", str(brokers)]
    server = ManagedServer("kafka-mock", command, lambda: bootstrap() is not None, log_dir=log_dir)
    address = bootstrap()
    assert address is not None
    return server, address


def start_tansu_on(log_dir: Path, name: str, advertised_port: int, *options: str) -> tuple[ManagedServer, int]:
    """A Tansu broker listening on a port of its own but advertising `advertised_port`, where a TLS
    terminator forwards to it; returns the server and the port it listens on."""
    port = free_port()
    command = [
        str(SERVER_BIN / "tansu"),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{port}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port}",
        "--storage-engine",
        "memory://tansu/",
        *options,
    ]
    server = ManagedServer(
        name, command, lambda: port_open(port), log_dir=log_dir, env={"PATH": os.environ.get("PATH", "")}
    )
    return server, port


class TestCertificates:
    """A certificate authority made for the session, a server certificate it signed for 127.0.0.1
    and localhost, a client certificate (mutual TLS), and a second CA that signed nothing here."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = self._authority("ca", "Feature Store Test CA")
        self.other_ca = self._authority("other-ca", "Some Other CA")
        self.server_cert, self.server_key = self._issue(
            "server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost"
        )
        self.client_cert, self.client_key = self._issue("client", "feature-store-api", "extendedKeyUsage=clientAuth")

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self.directory, check=True, capture_output=True)

    def _authority(self, name: str, subject: str) -> Path:
        self._openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={subject}",
        )  # fmt: skip
        return self.directory / f"{name}.pem"

    def _issue(self, name: str, common_name: str, extension: str) -> tuple[Path, Path]:
        self._openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={common_name}",
        )  # fmt: skip
        (self.directory / f"{name}.ext").write_text(extension + "\n")
        self._openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        )  # fmt: skip
        return self.directory / f"{name}.pem", self.directory / f"{name}.key"


class Stunnel:
    """Debian's stunnel4 terminating TLS in front of local plain-TCP servers: each service accepts
    TLS on a port of its own and forwards to `127.0.0.1:<target>`; `client_ca` makes a service
    require a client certificate signed by that CA (mutual TLS)."""

    def __init__(self, log_dir: Path, certificates: TestCertificates) -> None:
        self.log_dir = log_dir
        self.certificates = certificates
        self.services: dict[str, tuple[int, int, Path | None]] = {}
        self.server: ManagedServer | None = None

    def add(self, name: str, target: int, port: int | None = None, client_ca: Path | None = None) -> int:
        port = port or free_port()
        self.services[name] = (port, target, client_ca)
        return port

    def start(self) -> None:
        lines = ["foreground = yes", "pid =", "debug = notice", "syslog = no"]
        for name, (port, target, client_ca) in self.services.items():
            lines += [
                f"[{name}]",
                f"accept = 127.0.0.1:{port}",
                f"connect = 127.0.0.1:{target}",
                f"cert = {self.certificates.server_cert}",
                f"key = {self.certificates.server_key}",
            ]
            if client_ca is not None:
                lines += [f"CAfile = {client_ca}", "verifyChain = yes", "requireCert = yes"]
        config = self.log_dir / "stunnel.conf"
        config.write_text("\n".join(lines) + "\n")
        ports = [port for port, _, _ in self.services.values()]
        self.server = ManagedServer(
            "stunnel", ["stunnel4", str(config)], lambda: all(port_open(port) for port in ports), log_dir=self.log_dir
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["kafka-mock"]:
        run_kafka_mock_cluster(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    else:
        sys.exit(f"usage: {sys.argv[0]} kafka-mock [brokers]")
