"""Schemathesis hooks of the live run, loaded by `st` from `SCHEMATHESIS_HOOKS` (test_live_schema.py,
which puts the repository on PYTHONPATH): a schema-valid request refused for a rule no JSON Schema can
state (live_refusals.py) is not counted as a failure. Imported nowhere else, since a hook applies to
every schemathesis run of the process that registers it."""

from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

from tests.api.v1.live_refusals import refused_only_by_rules_no_schema_states


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if isinstance(failure, RejectedPositiveData):
        return not refused_only_by_rules_no_schema_states(response.status_code, response.content)
    return True
