"""Request id on every response and in every log line: the caller's, when it sent a sane one."""

import re
import uuid

from starlette.types import Scope

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")


def request_id_from(scope: Scope) -> str:
    """The caller's id when it is short and printable; a fresh one otherwise."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SANE_REQUEST_ID.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex
