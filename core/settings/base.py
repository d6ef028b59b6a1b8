"""What every settings section shares: the environment the service runs in, which env files it reads,
and how comma-separated values are read."""

import os
from enum import StrEnum
from typing import Annotated

from dotenv import dotenv_values
from pydantic import BaseModel, BeforeValidator
from pydantic_settings import NoDecode


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


def split_csv(value: str) -> list[str]:
    """`a, b,` -> ["a", "b"]: how comma-separated settings and CLI options are read."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _split_csv_text(value: object) -> object:
    return split_csv(value) if isinstance(value, str) else value


CommaSeparated = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_csv_text)]
"""A list setting written `a, b,` in the environment rather than as JSON."""


def env_files() -> tuple[str, ...]:
    """The env files to read, lowest precedence first: `.env.<ENVIRONMENT>`, then `.env`."""
    environment = os.environ.get("ENVIRONMENT") or dotenv_values(".env").get("ENVIRONMENT") or "development"
    return (f".env.{environment}", ".env")


class EnvironmentSettings(BaseModel):
    """The one setting other sections may consult: what they default to or demand depends on it."""

    environment: Environment = Environment.DEVELOPMENT
