"""Logging: JSON lines outside development, readable lines in development; request id on every line."""

import logging
import sys
from typing import Any

from core.request_context import request_id_var
from core.serialization import dumps
from core.settings import Settings
from core.timeutils import epoch_to_iso
from core.tracing import TraceFilter, tracing

HANDLER_NAME = "feature_store"
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's copy of its message with terminal colour codes
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": epoch_to_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            **_extras(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return dumps(line, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    COLOURS = {
        "DEBUG": "\033[36m",
        "INFO": "\033[32m",
        "WARNING": "\033[33m",
        "ERROR": "\033[31m",
        "CRITICAL": "\033[41m",
    }

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname
        if self.colour:
            level = f"{self.COLOURS.get(level, '')}{level:<7}\033[0m"
        extras = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        line = f"{epoch_to_iso(record.created)} {level} [{record.name}] {record.getMessage()} request_id={getattr(record, 'request_id', '-')}"
        if extras:
            line = f"{line} {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(settings: Settings) -> None:
    """Route the service's and uvicorn's loggers through one stderr handler.

    uvicorn's access log is switched off (no handler, no propagation, so uvicorn does not even
    format it): `middlewares/telemetry.py` writes one richer line per request instead.
    """
    # The logging HOWTO's optimisations: no line shows the caller's file, thread or process.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if tracing.enabled:
        handler.addFilter(TraceFilter())
    handler.setFormatter(JSONFormatter() if settings.log_as_json else ConsoleFormatter(colour=sys.stderr.isatty()))
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    root.handlers = [existing for existing in root.handlers if existing.get_name() != HANDLER_NAME] + [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
