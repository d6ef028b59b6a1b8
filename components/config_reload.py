"""Configuration changed without a restart: `API_KEYS_FILE`, `AUTH_JWT_GRANTS_FILE` and
`FEATURE_REGISTRY_FILE` are re-read when they change (checked every `CONFIG_RELOAD_SECONDS`) and on
`SIGHUP`.

A change is detected by `stat` through the path, so Kubernetes' swap of a mounted ConfigMap or Secret
(a new directory behind the `..data` symlink) counts as one. The three are loaded and checked together
(a key or a grant must name categories of the registry in force), and replace the old only when all
of them pass; otherwise the old stay in force, the refusal is logged (the file and what is wrong in it)
and counted as `config.reload_failed`. Each worker process watches and reloads on its own. A request
keeps the objects it started with: the swap replaces references, never mutates what a request holds.
"""

import asyncio
import hashlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from components.features.registry import Registry
from core.auth import Authenticator
from core.exceptions import ConfigurationError
from core.grants import Grants
from core.metrics import metrics

if TYPE_CHECKING:
    from components.runtime import Runtime

logger = logging.getLogger("feature_store.config")

T = TypeVar("T")

FileSignature = tuple[int, int, int, int] | None
"""(device, inode, size, mtime in ns) of the file a path leads to; None when it cannot be read."""


def signature(path: str) -> FileSignature:
    try:
        stat = os.stat(path)  # follows symlinks: a swapped `..data` link leads to a new file
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def digest(path: str) -> str:
    """The fingerprint `/ready` reports for a keys or grants file (it reveals nothing of the digests inside)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@dataclass(slots=True)
class FileState:
    setting: str
    path: str
    signature: FileSignature = None
    fingerprint: str = ""
    result: str = "loaded"
    """`loaded` (at start), `reloaded`, or `refused` (the previous version stays in force)."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"fingerprint": self.fingerprint, "last_reload": self.result}
        if self.error is not None:
            state["error"] = self.error
        return state


@dataclass(frozen=True, slots=True)
class Loaded:
    """One consistent configuration: the registry, the grants (None without tokens) and the authenticator."""

    registry: Registry
    grants: Grants | None
    auth: Authenticator | None


class ConfigReloader:
    def __init__(self, runtime: "Runtime") -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.settings = settings
        watched = {"FEATURE_REGISTRY_FILE": settings.feature_registry_file}
        if settings.auth_enabled:
            watched |= {"API_KEYS_FILE": settings.api_keys_file, "AUTH_JWT_GRANTS_FILE": settings.auth_jwt_grants_file}
        self.files = {setting: FileState(setting, path) for setting, path in watched.items() if path}
        for state in self.files.values():
            state.signature = signature(state.path)
            state.fingerprint = self._fingerprint(state.setting, runtime.registry)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def _fingerprint(self, setting: str, registry: Registry) -> str:
        if setting == "FEATURE_REGISTRY_FILE":
            return registry.document.etag.strip('"')
        return digest(self.files[setting].path)

    def load(self) -> Loaded:
        """Read every watched file and check them together; ReloadRefused (naming the setting) when one fails."""
        settings = self.settings
        registry = self.runtime.registry
        if "FEATURE_REGISTRY_FILE" in self.files:
            registry = _attempt("FEATURE_REGISTRY_FILE", lambda: Registry.from_settings(settings))
        grants = None
        if settings.auth_enabled and settings.auth_jwt_issuer:
            grants = _attempt(
                "AUTH_JWT_GRANTS_FILE", lambda: Grants.load(settings.auth_jwt_grants_file, registry.names)
            )
        auth = None
        if settings.auth_enabled:
            names = grants.names if grants is not None else []
            auth = _attempt("API_KEYS_FILE", lambda: Authenticator.from_settings(settings, registry.names, names))
        return Loaded(registry, grants, auth)

    def changed(self) -> list[FileState]:
        return [state for state in self.files.values() if signature(state.path) != state.signature]

    async def reload(self, why: str) -> bool:
        """Load and check the watched files in a worker thread, then swap them in on the event loop."""
        async with self._lock:
            changed = self.changed() if why == "changed" else list(self.files.values())
            for state in changed:
                state.signature = signature(state.path)
            try:
                loaded = await asyncio.to_thread(self.load)
            except ReloadRefused as exc:
                state = self.files[exc.setting]
                state.result, state.error = "refused", exc.describe(state.path)
                metrics.incr("config.reload_failed", file=exc.setting)
                logger.error(
                    "configuration reload refused; the previous configuration stays in force",
                    extra={"file": exc.setting, "path": state.path, "error": state.error, "trigger": why},
                )
                return False
            self.runtime.use_configuration(loaded.registry, loaded.grants, loaded.auth)
            for state in self.files.values():
                fingerprint = self._fingerprint(state.setting, loaded.registry)
                if fingerprint != state.fingerprint or state.result == "refused":
                    state.result = "reloaded"
                state.fingerprint, state.error = fingerprint, None
            logger.info(
                "configuration reloaded",
                extra={"trigger": why, "fingerprints": {name: state.fingerprint for name, state in self.files.items()}},
            )
            return True

    def start(self) -> None:
        """Watch the files (every CONFIG_RELOAD_SECONDS) and reload on SIGHUP where this process may catch it."""
        loop = asyncio.get_running_loop()
        if self.settings.config_reload_seconds > 0 and self.files:
            self._task = loop.create_task(self._watch(self.settings.config_reload_seconds), name="config-watch")
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload("SIGHUP")))
        except (ValueError, RuntimeError, NotImplementedError):
            pass  # not the main thread (a test's app) or no signals here: the file watch still runs

    async def _watch(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            if self.changed():
                try:
                    await self.reload("changed")
                except Exception:
                    logger.exception("configuration reload failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (ValueError, RuntimeError, NotImplementedError):
            pass

    def state(self) -> dict[str, Any]:
        return {setting: state.as_dict() for setting, state in self.files.items()}


class ReloadRefused(Exception):
    def __init__(self, setting: str, reason: Exception) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason

    def describe(self, path: str) -> str:
        """What `/ready` and the log show: the setting, the path and the reason (loaders name the first two)."""
        reason = str(self.reason)
        return (reason if reason.startswith(self.setting) else f"{self.setting} {path}: {reason}")[:500]


def _attempt(setting: str, load: Callable[[], T]) -> T:
    try:
        return load()
    except (ValueError, OSError, ConfigurationError) as exc:
        raise ReloadRefused(setting, exc) from None
