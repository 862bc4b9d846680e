"""What every answer of the public server gets, whatever the route: written as plain
ASGI (no BaseHTTPMiddleware) so the live stream is never buffered or slowed.

- security headers: the browser loads scripts only from this server, images only
  from here and the map tiles' host, and no other site may show the page in a frame;
- HEAD is answered like GET without a body (uptime checkers use HEAD);
- headers over [web] max_header_bytes get 431 (h11 bounds what it buffers, but a
  header block that arrives in one read, up to 256 KiB, passes h11 whole);
- a request body over [web] max_body_bytes gets 413 before any route runs.
"""

import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.settings import Settings
from machikit.texts import say

# The API answers data, never pages: nothing in it may load or run anything.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def page_policy(tile_url: str) -> str:
    """The map page: its files from here, tiles from their host. Styles may be inline
    because Leaflet and the markers set style attributes (rotation, position)."""
    parts = urlsplit(tile_url.replace("{s}", "*"))
    tiles = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: {tiles}".rstrip() + "; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.web.max_body_bytes
        self.max_headers = settings.web.max_header_bytes
        self.page_policy = page_policy(settings.map.tile_url).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = self._with_headers(send)
        if header_bytes(scope) > self.max_headers:
            await too_large(send, 431)
            return
        body = await self._small_body(scope, receive)
        if body is None:
            await too_large(send, 413)
            return
        if scope["method"] == "HEAD":
            scope = {**scope, "method": "GET", "machikit.head": True}
        await self.app(scope, replay(body, receive), send)

    def _with_headers(self, send: Send) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                html = any(k == b"content-type" and v.startswith(b"text/html")
                           for k, v in headers)
                headers += [
                    (b"content-security-policy",
                     self.page_policy if html else API_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"strict-origin-when-cross-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)
        return send_with_headers

    async def _small_body(self, scope: Scope, receive: Receive) -> list[Message] | None:
        """The request body's messages, or None when it is too large. Read here because
        the routes never read it, and an unread body would still fill memory."""
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body:
            return None
        if int(length) == 0 and b"transfer-encoding" not in headers:
            return []
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_body:
                return None
            if message["type"] != "http.request" or not message.get("more_body"):
                return messages


def replay(messages: list[Message], receive: Receive) -> Receive:
    """The body already read, then the client's own messages (its disconnect)."""
    async def receive_again() -> Message:
        return messages.pop(0) if messages else await receive()
    return receive_again


def header_bytes(scope: Scope) -> int:
    return (len(scope.get("raw_path") or b"") + len(scope["query_string"])
            + sum(len(name) + len(value) + 4 for name, value in scope["headers"]))


async def too_large(send: Send, status: int) -> None:
    body = json.dumps({"detail": say("api_too_large")}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
