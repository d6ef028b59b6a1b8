"""One timestamp format everywhere: UTC ISO 8601 with microseconds (`...T09:15:51.358632+00:00`)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """Render in the contract's format; naive datetimes are taken as UTC.

    Fixed width, so two values compare correctly as strings (the stores rely on it).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def epoch_to_iso(seconds: float) -> str:
    return isoformat(datetime.fromtimestamp(seconds, UTC))
