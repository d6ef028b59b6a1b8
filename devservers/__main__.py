"""`python -m devservers kafka-mock [brokers]`: librdkafka's mock cluster, the body of its own process."""

import sys

from devservers.kafka import run_kafka_mock_cluster

if sys.argv[1:2] == ["kafka-mock"]:
    run_kafka_mock_cluster(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
else:
    sys.exit(f"usage: {sys.executable} -m devservers kafka-mock [brokers]")
