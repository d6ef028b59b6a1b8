"""The process-wide DynamoDB client: built once per configuration, on first use, whatever the threads."""

import threading
from concurrent.futures import ThreadPoolExecutor

from core.dynamodb import get_client
from core.settings import Settings


def make(**overrides: object) -> Settings:
    values: dict[str, object] = {"store_backend": "dynamodb", "dynamodb_endpoint_url": "http://127.0.0.1:1"}
    return Settings(_env_file=None, **(values | overrides))


def test_one_client_for_all_threads() -> None:
    settings = make(aws_region="eu-west-3")
    barrier = threading.Barrier(16)

    def build(_: int) -> int:
        barrier.wait()
        return id(get_client(settings))

    with ThreadPoolExecutor(16) as pool:
        assert len(set(pool.map(build, range(16)))) == 1
    assert get_client(make(aws_region="eu-west-3")) is get_client(settings)


def test_client_is_configured_from_settings() -> None:
    settings = make(
        aws_region="eu-west-2",
        threadpool_size=40,
        dynamodb_batch_threads=4,
        dynamodb_connect_timeout_seconds=0.7,
        dynamodb_read_timeout_seconds=1.5,
        dynamodb_max_attempts=5,
        dynamodb_retry_mode="adaptive",
    )
    client = get_client(settings)
    config = client.meta.config
    assert client.meta.region_name == "eu-west-2"
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
    assert config.max_pool_connections == 44
    assert (config.connect_timeout, config.read_timeout) == (0.7, 1.5)
    assert config.retries["mode"] == "adaptive"
    assert config.retries["total_max_attempts"] == 5
    assert get_client(make(aws_region="eu-west-2")) is not client
