"""What the live schemathesis run (test_live_schema.py) lets through: a rule no JSON Schema can state.

`POST /api/v1/items` refuses a write naming one category twice in `feature_list` (which of the two
would hold?); JSON Schema's `uniqueItems` compares whole items, not one property of them, so the
document cannot say it. Nor can it say that an `event_time` may be at most MAX_EVENT_TIME_AHEAD_SECONDS
ahead of the server's clock. A schema-valid request refused for those reasons alone is not a disagreement;
any other refusal, or one of those together with another, still fails the run.
"""

import json

REPEATED_CATEGORY = "appears more than once"
EVENT_TIME_AHEAD = "MAX_EVENT_TIME_AHEAD_SECONDS"
RULES = (REPEATED_CATEGORY, EVENT_TIME_AHEAD)


def refused_only_by_rules_no_schema_states(status_code: int, content: bytes) -> bool:
    if status_code != 422:
        return False
    try:
        detail = json.loads(content)["detail"]
    except (ValueError, KeyError, TypeError):
        return False
    return (
        isinstance(detail, list)
        and bool(detail)
        and all(
            isinstance(error, dict) and any(rule in str(error.get("msg", "")) for rule in RULES) for error in detail
        )
    )
