"""Write the service's OpenAPI document to `openapi.json`, the file client generators are pointed at.

    make openapi            # rewrite openapi.json
    make openapi ARGS=--check   # exit 1 when openapi.json differs from the app's document

The document is the one a deployed service serves: API keys on (so the security schemes are in it),
every other setting at its default; neither `.env` nor the environment changes it. Keys sorted and
indented, so a change to the API shows up as a readable diff.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource  # noqa: E402

from core.auth import hash_key  # noqa: E402
from core.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT_PATH = ROOT / "openapi.json"


class DefaultSettings(Settings):
    """The settings' defaults and what the caller passes; no env file, no environment variable."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def published_document() -> dict[str, Any]:
    from main import create_app

    with tempfile.TemporaryDirectory() as directory:
        # The keys themselves are not in the document; the app needs a file to start with keys on.
        keys_file = Path(directory) / "keys.json"
        entry = {"name": "openapi", "sha256": hash_key("openapi"), "scopes": ["features:read"]}
        keys_file.write_text(json.dumps([entry]))
        settings = DefaultSettings(
            auth_enabled=True, api_keys_file=str(keys_file), sqlite_path=Path(directory) / "features.db"
        )
        return create_app(settings).openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make openapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    text = render(published_document())
    if args.check:
        if not DOCUMENT_PATH.exists() or DOCUMENT_PATH.read_text(encoding="utf-8") != text:
            print(f"{DOCUMENT_PATH.name} is not the app's document: run make openapi", file=sys.stderr)
            return 1
        return 0
    DOCUMENT_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
