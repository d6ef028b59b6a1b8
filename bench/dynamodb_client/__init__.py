"""Client CPU per DynamoDB call: boto3 as the store uses it today against the asyncio client
(`core.dynamodb_client`), on a local Dynoxide loaded with 200 entities x 5 categories x 20 floats
in the store's item layout.

    python -m bench.dynamodb_client [--scale 0.2] [--only NAME ...] [--json FILE]

CPU is this process's own (`time.process_time`, every thread) over the run, divided by the calls;
Dynoxide's CPU is its own process's and is not counted. Each call is measured raw (DynamoDB's
answer as the client returns it) and, for reads, with the items decoded into Python values as the
store does. "seq" runs one call at a time; "c4" keeps four in flight (four threads for boto3, four
tasks for the asyncio client).

One module a benchmark: calls.py the CPU per call (contenders.py the clients it compares), decoding.py
the attribute-value converters, breakdown.py one call's parts against a server that answers at once;
dataset.py the data they share.
"""

from bench.dynamodb_client.calls import CALLS

__all__ = ["CALLS"]
