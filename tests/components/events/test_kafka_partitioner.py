"""One entity's events land on the partition a Java client (or Kafka Streams) picks for the same key:
Kafka's murmur2, reimplemented here from the Java client and checked against its own test vectors."""

import zlib

import pytest

from components.events.kafka_config import producer_config
from tests.components.events.kafka_helpers import consume, wait_for, write
from tests.conftest import KafkaBroker, SettingsFactory

pytestmark = pytest.mark.backends("sqlite")

# Kafka's own test vectors for Utils.murmur2 (clients/src/test/.../utils/UtilsTest.java).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def murmur2(data: bytes) -> int:
    """Java's `Utils.murmur2`: a signed 32-bit hash."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for offset in range(0, length - length % 4, 4):
        k = int.from_bytes(data[offset : offset + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length - length % 4
    if length % 4 == 3:
        h ^= data[tail + 2] << 16
    if length % 4 >= 2:
        h ^= data[tail + 1] << 8
    if length % 4 >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: str, partitions: int) -> int:
    """The Java producer's default partition for a non-null key: `toPositive(murmur2(key)) % n`."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@pytest.mark.parametrize(("data", "expected"), JAVA_MURMUR2.items())
def test_the_reference_murmur2_is_javas(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_the_producer_uses_murmur2_random_unless_told_otherwise(make_settings: SettingsFactory) -> None:
    assert producer_config(make_settings())["partitioner"] == "murmur2_random"
    assert producer_config(make_settings(kafka_partitioner="consistent_random"))["partitioner"] == "consistent_random"


def test_each_entity_lands_on_the_partition_java_would_choose(
    make_client, kafka_settings, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    partitions = 3
    entities = [f"user-{index}" for index in range(24)]
    keys = [f"bright_uid:{entity}" for entity in entities]
    # The keys tell the partitioners apart: librdkafka's former default (CRC32) places some elsewhere.
    assert any(java_partition(key, partitions) != zlib.crc32(key.encode()) % partitions for key in keys)
    client = make_client(**kafka_settings)
    for entity in entities:
        write(client, entity, {"user_features": {"n": 1}})
    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=len(entities))
    assert {item.key for item in received} == set(keys)
    assert {item.key: item.partition for item in received} == {key: java_partition(key, partitions) for key in keys}
    wait_for(lambda: client.run(client.app.state.runtime.store.outbox_stats).pending == 0)
