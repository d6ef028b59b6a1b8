"""Start the service: `python -m serve`. The one place uvicorn's options are built, from `Settings`
(`core/http_server.py`), so `make run`, the image and Kubernetes serve with the same connection limits,
keep-alive and shutdown timeouts, configured like every other setting."""

import uvicorn

from core.http_server import server_options
from core.settings import Settings


def main() -> None:
    uvicorn.run(**server_options(Settings()))


if __name__ == "__main__":
    main()
