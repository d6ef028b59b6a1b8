"""Local servers for the tests and the benchmark: Dynoxide (the DynamoDB API), Tansu (the Kafka API)
and Etsy statsd, run from `.servers/` (installed by `scripts/install_test_servers.sh`, which
`make test` and `make bench` run) on free ports, librdkafka's mock Kafka cluster in a process of its
own (`python -m devservers kafka-mock`), moto's DynamoDB in a thread, stunnel4 putting TLS in front of
Tansu with certificates made by openssl, an OIDC issuer in a thread (`LocalIssuer`), and the service itself
(`serve.py`) in its own process.
Development only: not part of the service's image."""

from devservers.dynamodb import MotoServer, start_dynoxide, start_moto
from devservers.kafka import KAFKA_MOCK_BOOTSTRAP, run_kafka_mock_cluster, start_kafka_mock, start_tansu, start_tansu_on
from devservers.oidc import LocalIssuer
from devservers.processes import (
    NODE_MODULES,
    ROOT,
    SERVER_BIN,
    ManagedServer,
    free_port,
    free_udp_port,
    port_open,
    running,
)
from devservers.service import ServiceProcess
from devservers.statsd import StatsdServer, parse_node_inspect
from devservers.tls import Stunnel, TestCertificates

__all__ = [
    "KAFKA_MOCK_BOOTSTRAP",
    "LocalIssuer",
    "NODE_MODULES",
    "ROOT",
    "SERVER_BIN",
    "ManagedServer",
    "MotoServer",
    "ServiceProcess",
    "StatsdServer",
    "Stunnel",
    "TestCertificates",
    "free_port",
    "free_udp_port",
    "parse_node_inspect",
    "port_open",
    "running",
    "run_kafka_mock_cluster",
    "start_dynoxide",
    "start_kafka_mock",
    "start_moto",
    "start_tansu",
    "start_tansu_on",
]
