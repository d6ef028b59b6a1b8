"""CORS per environment: any origin in development, only `CORS_ORIGINS` in staging and production
(where `*` is refused by the settings). With no origin allowed, no CORS headers are sent at all."""

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from core.settings import Settings


def add_cors(app: FastAPI, settings: Settings) -> None:
    origins = settings.allowed_origins
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "ETag"],
    )
