"""What the live schemathesis run (test_live_schema.py) lets through: a rule no JSON Schema can state.

`POST /api/v1/items` refuses a write naming one category twice in `feature_list` (which of the two
would hold?); JSON Schema's `uniqueItems` compares whole items, not one property of them, so the
document cannot say it. A schema-valid write refused for that reason alone is not a disagreement;
any other refusal, or that one together with another, still fails the run.
"""

import json

REPEATED_CATEGORY = "appears more than once"


def refused_only_for_a_repeated_category(status_code: int, content: bytes) -> bool:
    if status_code != 422:
        return False
    try:
        detail = json.loads(content)["detail"]
    except (ValueError, KeyError, TypeError):
        return False
    return (
        isinstance(detail, list)
        and bool(detail)
        and all(isinstance(error, dict) and REPEATED_CATEGORY in str(error.get("msg", "")) for error in detail)
    )
