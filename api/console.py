"""`/console`: the web page that looks an entity up, reads the registry and watches the pipeline.

Its files (`console/` at the repository's root: HTML, CSS and ES modules, no build step) are read once
when the app is built and served from memory. The page calls the public JSON API only, with the key
the person typed, so it can do nothing the key could not do with curl. Every answer carries a strict
Content-Security-Policy: scripts and styles only from these files, no inline code, no framing.
"""

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.exceptions import NotFound

CONSOLE_DIRECTORY = Path(__file__).resolve().parent.parent / "console"
CONSOLE_PATH = "/console"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
"""`X-Frame-Options` for browsers that predate `frame-ancestors`; `no-cache`: a new release shows at once."""


def console_files(directory: Path = CONSOLE_DIRECTORY) -> dict[str, tuple[bytes, str]]:
    """Every servable file of the console by its name under `/console/`, with its media type."""
    return {
        str(path.relative_to(directory)): (path.read_bytes(), MEDIA_TYPES[path.suffix])
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


def console_routes(directory: Path = CONSOLE_DIRECTORY) -> list[BaseRoute]:
    files = console_files(directory)

    async def to_index(request: Request) -> Response:
        """`/console` -> `/console/`, so the page's relative links resolve under it (behind a root path too)."""
        return RedirectResponse(request.scope.get("root_path", "") + CONSOLE_PATH + "/", headers=SECURITY_HEADERS)

    async def serve(request: Request) -> Response:
        name = request.path_params.get("name") or "index.html"
        found = files.get(name)
        if found is None:
            raise NotFound(f"no console file {name!r}")
        body, media_type = found
        return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

    return [
        Route(CONSOLE_PATH, to_index, methods=["GET"], include_in_schema=False),
        Route(CONSOLE_PATH + "/", serve, methods=["GET"], include_in_schema=False),
        Route(CONSOLE_PATH + "/{name:path}", serve, methods=["GET"], include_in_schema=False),
    ]
