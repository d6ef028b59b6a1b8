"""Each error code of the service becomes its own exception, carrying the request id."""

import re
from typing import cast

import httpx
import pytest

from feature_store_client import (
    FeatureStoreClient,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RetryPolicy,
    Unauthorized,
    ValidationError,
)
from tests.client.conftest import WRITER

pytestmark = pytest.mark.backends("sqlite")


def client_of(app_client, **options) -> FeatureStoreClient:
    return FeatureStoreClient(http_client=cast(httpx.Client, app_client), **options)


def test_the_callers_request_id_is_sent_and_carried_by_the_error(client) -> None:
    with client_of(client) as store, pytest.raises(NotFound) as missing:
        store.read_category("nobody", "user_features", request_id="trace-42")
    assert (missing.value.request_id, missing.value.status_code, missing.value.error) == ("trace-42", 404, "not_found")


def test_a_request_id_is_generated_per_call(client) -> None:
    seen: list[str | None] = []
    with client_of(client) as store:
        for _ in range(2):
            with pytest.raises(NotFound) as missing:
                store.read_category("nobody", "user_features")
            seen.append(missing.value.request_id)
    assert all(re.fullmatch(r"[0-9a-f]{32}", str(value)) for value in seen) and seen[0] != seen[1]


def test_a_validation_error_carries_the_field_errors(client) -> None:
    with client_of(client) as store, pytest.raises(ValidationError) as refused:
        store.write("user-1", {"no_such_category": {"x": 1}}, source=WRITER, request_id="bad-1")
    assert refused.value.request_id == "bad-1"
    assert refused.value.errors and all({"loc", "msg", "type"} <= set(error) for error in refused.value.errors)


def test_a_body_over_the_maximum_is_payload_too_large(make_client) -> None:
    with client_of(make_client(max_body_bytes=2000)) as store, pytest.raises(PayloadTooLarge) as refused:
        store.write("user-1", {"user_features": {"blob": "x" * 5000}}, source=WRITER)
    assert refused.value.status_code == 413 and refused.value.request_id


def test_keys_decide_unauthorized_and_forbidden(make_auth_client, api_keys) -> None:
    app_client = make_auth_client()
    with client_of(app_client) as anonymous, pytest.raises(Unauthorized) as refused:
        anonymous.read_features("user-1", ["user_features:age"], request_id="anon-1")
    assert refused.value.request_id == "anon-1"
    with client_of(app_client, api_key=api_keys["reader"]) as reader:
        assert reader.limits().max_batch_entities == 1000
        with pytest.raises(Forbidden):
            reader.write("user-1", {"user_features": {"age": 1}}, source=WRITER)
    with client_of(app_client, api_key=api_keys["writer"]) as writer:
        assert writer.write("user-1", {"user_features": {"age": 1}}).categories_updated == ["user_features"]


def test_rate_limited_carries_retry_after(make_auth_client, api_keys) -> None:
    app_client = make_auth_client(rate_limit_per_second=0.001, rate_limit_burst=1)
    with client_of(app_client, api_key=api_keys["reader"], retry=RetryPolicy(attempts=1)) as reader:
        reader.registry()
        with pytest.raises(RateLimited) as limited:
            reader.registry(request_id="busy-1")
    assert limited.value.retry_after is not None and limited.value.retry_after > 0
    assert limited.value.request_id == "busy-1"
