"""The request middleware with a server span around its pass, installed instead of it while tracing is on.

A span of our own rather than opentelemetry-instrumentation-asgi: the request middleware already knows
what the span needs (the route template the router left in the scope, the request id, the status) in
its single pass, and the instrumentation would add a second ASGI layer that wraps every `receive` and
`send` in spans of their own. With tracing off this class is not installed at all, so the plain
middleware's path carries no branch, no span and no allocation for tracing.
"""

from starlette.types import Message, Receive, Scope, Send

from core.tracing import record_response, tracing
from middlewares.request import RequestMiddleware


class TracedRequestMiddleware(RequestMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.unobserved_paths:
            await super().__call__(scope, receive, send)
            return
        # The span is current for the whole pass: store calls become its children and the access
        # line, written at the end of the pass, carries its ids.
        with tracing.server_span(scope) as span:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    record_response(span, message["status"])
                await send(message)

            await super().__call__(scope, receive, send_traced)
