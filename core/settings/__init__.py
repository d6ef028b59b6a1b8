"""Service configuration: one pydantic-settings class read from the environment and env files, composed of
one section per concern (store, limits, kafka, observability, server) and the checks that span them.

Precedence, highest first: process environment, `.env` (local, never committed), `.env.<ENVIRONMENT>`
(the committed defaults of that environment), the defaults of each section. ENVIRONMENT itself comes from
the process environment, else from `.env`, else `development`.
"""

from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings.base import Environment, env_files, split_csv
from core.settings.checks import PRODUCTION_REFUSALS, CheckedSettings
from core.settings.limits import BATCH_BODY_BYTES_PER_ENTITY
from core.settings.store import (
    DEFAULT_CATEGORIES,
    MAX_HISTORY_VERSIONS,
    CategoryHistory,
    EntityType,
    EntityTypeLocation,
    StoreBackend,
)

__all__ = [
    "BATCH_BODY_BYTES_PER_ENTITY",
    "DEFAULT_CATEGORIES",
    "MAX_HISTORY_VERSIONS",
    "PRODUCTION_REFUSALS",
    "CategoryHistory",
    "EntityType",
    "EntityTypeLocation",
    "Environment",
    "Settings",
    "StoreBackend",
    "env_files",
    "split_csv",
]


class Settings(CheckedSettings, BaseSettings):
    """Every setting the service reads; `.env.example` documents each one."""

    # Inputs are never echoed in validation errors: some settings are secrets.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    def __init__(self, **values: Any) -> None:
        """Read the env files of the selected environment unless the caller names its own (`_env_file`)."""
        values.setdefault("_env_file", env_files())
        super().__init__(**values)
