"""Decoding DynamoDB's typed attribute values into Python: the store's converter before the asyncio
client (boto3's) against the one it uses now."""

import json
import time

from bench.dynamodb_client.dataset import decode_items_boto3, decode_items_wire, fresh_event_time, item


def converter_benchmark(rounds: int) -> dict[str, float]:
    """Microseconds to decode 50 items' features and metadata into Python, with each converter."""
    stamp = fresh_event_time()
    boto3_items = [item(entity, 0, stamp) for entity in range(50)]
    wire_items = json.loads(json.dumps(boto3_items))
    results = {}
    for name, decode, items in (
        ("boto3_baseline (the store's before)", decode_items_boto3, boto3_items),
        ("dynamodb_client.attributes", decode_items_wire, wire_items),
    ):
        started = time.process_time()
        for _ in range(rounds):
            decode(items)
        results[name] = round((time.process_time() - started) * 1e6 / rounds, 1)
        print(f"decode 50 items x 20 features, {name:<30} {results[name]:8.1f} us")
    return results
