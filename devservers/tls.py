"""TLS for the Kafka security tests: certificates made by openssl, and stunnel4 in front of plain-TCP servers."""

import subprocess
from pathlib import Path

from devservers.processes import ManagedServer, free_port, port_open


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
