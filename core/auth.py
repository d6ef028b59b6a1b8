"""API keys: which caller a request comes from and what it may do.

Keys are configured only as SHA-256 hex digests in `API_KEYS_FILE` (JSON or YAML, a list of
`{name, sha256, scopes, sources, categories}`); the plaintext key exists only with its holder.

Verifying a key costs one SHA-256 and one dict lookup keyed by the hex digest. That lookup is not
constant-time, and need not be: its timing can at most reveal how much of the digest *of the
caller's own guess* matches a stored digest, and turning that into a key needs a SHA-256 preimage.
The keys are 256-bit random tokens, so a fast unsalted hash is enough (salting and slow hashes
protect low-entropy passwords). No key, digest or header is ever logged.

`python -m core.auth new-key --name ranker --scopes features:read` prints a fresh key and its file entry.
"""

import argparse
import hashlib
import json
import math
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, model_validator

from core.exceptions import Forbidden, RateLimited, Unauthorized
from core.file_lines import at_line
from core.ratelimit import RateLimiter
from core.settings import Settings, split_csv

SCOPE_READ = "features:read"
SCOPE_WRITE = "features:write"
SCOPE_ADMIN = "admin"
"""Operator actions such as `/warmup`: neither reading nor writing features."""
ANY_CATEGORY = "*"
KEY_PREFIX = "fs_"
"""Marks a string as a feature store key, for secret scanners and for people."""
MAX_KEY_CHARS = 256

Scope = Literal["features:read", "features:write", "admin"]
KeyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class KeyEntry(BaseModel):
    """One key in `API_KEYS_FILE`. A writer names the sources it writes as (the first is used when a
    write gives none) and the categories it may write (`*` = every allowed category)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: KeyName
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$", to_lower=True)]
    scopes: list[Scope] = Field(min_length=1)
    sources: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = []
    categories: list[str] = []

    @model_validator(mode="after")
    def _writers_name_what_they_write(self) -> "KeyEntry":
        if SCOPE_WRITE in self.scopes and not (self.sources and self.categories):
            raise ValueError(f"key {self.name!r} has {SCOPE_WRITE} but no sources or no categories")
        return self


_ENTRIES = TypeAdapter(list[KeyEntry])


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a valid key."""

    name: str
    scopes: frozenset[str]
    sources: tuple[str, ...]
    categories: frozenset[str] | None
    """None: every allowed category."""
    actor: str = ""
    """Who is acting, as the audit trail records it: `key:<name>`, or a token's `sub:<subject> client:<id>`."""
    kind: Literal["api_key", "jwt"] = "api_key"
    """How the caller proved who it is."""

    def may_write(self, category: str) -> bool:
        return self.categories is None or category in self.categories


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _describe(exc: ValidationError, text: str) -> str:
    """Field errors with their line, without the offending input: a misplaced key or digest must not reach
    the log."""
    return "; ".join(
        f"{at_line(text, error['loc'])}entry {'.'.join(map(str, error['loc']))}: {error['msg']}"
        for error in exc.errors(include_input=False)
    )


def load_entries(path: str | Path, allowed_categories: Iterable[str] | None = None) -> list[KeyEntry]:
    """Read and check `API_KEYS_FILE` (and, when given, that every category it names is allowed); any problem
    is a ValueError naming the file, the line and what is wrong."""
    path = Path(path)
    text = ""
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        entries = _ENTRIES.validate_python(raw)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        reason = _describe(exc, text) if isinstance(exc, ValidationError) else exc
        raise ValueError(f"API_KEYS_FILE {path}: cannot load keys: {reason}") from None
    if not entries:
        raise ValueError(f"API_KEYS_FILE {path} holds no keys")
    for attribute in ("name", "sha256"):
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            if (value := getattr(entry, attribute)) in seen:
                where = at_line(text, (index, attribute))
                raise ValueError(f"API_KEYS_FILE {path}: {where}entry {index}: two keys share a {attribute}")
            seen.add(value)
    if allowed_categories is not None:
        allowed = frozenset(allowed_categories)
        for index, entry in enumerate(entries):
            if problem := _unknown_categories(entry, allowed):
                raise ValueError(f"API_KEYS_FILE {path}: {at_line(text, (index, 'categories'))}{problem}")
    return entries


def _unknown_categories(entry: KeyEntry, allowed: frozenset[str]) -> str | None:
    unknown = set(entry.categories) - allowed - {ANY_CATEGORY}
    if not unknown:
        return None
    return (
        f"key {entry.name!r} names categories not allowed (ALLOWED_CATEGORIES or the feature registry): "
        f"{sorted(unknown)}"
    )


class Authenticator:
    """Resolves a presented key to its Principal and enforces scope and rate."""

    def __init__(
        self, entries: Sequence[KeyEntry], allowed_categories: Iterable[str], limiter: RateLimiter | None = None
    ) -> None:
        allowed = frozenset(allowed_categories)
        self._by_digest: dict[str, Principal] = {}
        for entry in entries:
            if problem := _unknown_categories(entry, allowed):
                raise ValueError(problem)
            categories = None if ANY_CATEGORY in entry.categories else frozenset(entry.categories)
            self._by_digest[entry.sha256] = Principal(
                entry.name, frozenset(entry.scopes), tuple(entry.sources), categories, f"key:{entry.name}"
            )
        self.limiter = limiter

    @classmethod
    def from_settings(
        cls, settings: Settings, allowed_categories: Iterable[str] | None = None, grant_names: Iterable[str] = ()
    ) -> "Authenticator":
        """`allowed_categories`: the categories keys may name; ALLOWED_CATEGORIES when not given.
        `grant_names`: the JWT grants, rate-limited like keys. Without API_KEYS_FILE only tokens get in."""
        allowed = settings.allowed_categories if allowed_categories is None else allowed_categories
        entries = load_entries(settings.api_keys_file, allowed) if settings.api_keys_file else []
        limiter = None
        if settings.rate_limit_per_second > 0:
            limiter = RateLimiter(
                [entry.name for entry in entries] + list(grant_names),
                settings.rate_limit_per_second,
                settings.rate_limit_burst,
            )
        return cls(entries, allowed, limiter)

    def authenticate(self, presented: str | None, scope: str | None) -> Principal:
        if not presented or len(presented) > MAX_KEY_CHARS:
            raise Unauthorized("an API key is required: send it as X-API-Key or Authorization: Bearer")
        principal = self._by_digest.get(hash_key(presented))
        if principal is None:
            raise Unauthorized("the API key is not valid")
        return self.authorise(principal, scope)

    def authorise(self, principal: Principal, scope: str | None) -> Principal:
        """The scope and the rate of a known caller (a key's, or a token's through its grants); `scope` None:
        any known caller (e.g. asking what it may do)."""
        if scope is not None and scope not in principal.scopes:
            caller = f"key {principal.name!r}" if principal.kind == "api_key" else f"grants {principal.name!r}"
            raise Forbidden(f"{caller} lacks the {scope!r} scope")
        # A token matching several grants is limited by its first grant's bucket (names hold no comma).
        if self.limiter is not None and (wait := self.limiter.acquire(principal.name.partition(",")[0])):
            raise RateLimited(f"key {principal.name!r} is over its rate limit", retry_after=max(1, math.ceil(wait)))
        return principal


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.auth", description="Manage feature store API keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("new-key", help="print a fresh key (give it to the caller) and its file entry")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", required=True, help="comma-separated: features:read, features:write, admin")
    create.add_argument("--sources", default="", help="writers: comma-separated sources it writes as")
    create.add_argument("--categories", default="", help="writers: comma-separated categories, or *")
    create.add_argument("--format", choices=("json", "yaml"), default="json")
    commands.add_parser("hash", help="read a key on stdin and print its sha256 (to re-register an existing key)")
    args = parser.parse_args(argv)

    if args.command == "hash":
        print(hash_key(sys.stdin.readline().strip()))
        return 0
    key = new_key()
    values = {
        "name": args.name,
        "sha256": hash_key(key),
        "scopes": split_csv(args.scopes),
        "sources": split_csv(args.sources),
        "categories": split_csv(args.categories) or ([ANY_CATEGORY] if SCOPE_WRITE in args.scopes else []),
    }
    try:
        entry = KeyEntry(**values).model_dump()
    except ValidationError as exc:
        parser.error("; ".join(error["msg"] for error in exc.errors()))
    print(f"key (give it to {args.name}; it is not stored anywhere): {key}", file=sys.stderr)
    if args.format == "yaml":
        print(yaml.safe_dump([entry], sort_keys=False), end="")
    else:
        print(json.dumps(entry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
