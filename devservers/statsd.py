"""Etsy statsd, the StatsD server the metrics tests read back what the service sent."""

import json
import re
import socket
from pathlib import Path

from devservers.processes import NODE_MODULES, ManagedServer, free_port, free_udp_port, port_open

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
