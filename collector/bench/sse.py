"""A lean HTTP/1.1 + server-sent events client on raw asyncio streams.

Thousands of these share one process: no HTTP library, one coroutine per
connection, events cut out of the byte stream as they come (docs/api.md, live).
"""

import asyncio

HEAD_END = b"\r\n\r\n"
READ_LIMIT = 1 << 22  # a snapshot of a big town fits in one readuntil()


class HttpError(Exception):
    """The server answered, but not with what we asked for."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"HTTP {status} {detail}".strip())
        self.status = status


def request(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: machikit-bench"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """b'HTTP/1.1 200 OK\\r\\nA: b\\r\\n\\r\\n' -> (200, {'a': 'b'})."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise HttpError(0, f"not HTTP: {status_line[:40]!r}")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    return parse_head(await reader.readuntil(HEAD_END))


class Body:
    """The body as it arrives: chunked transfer coding undone, else raw until EOF.
    A plain class, not an async generator, so a read can be given a timeout."""

    def __init__(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        self.reader = reader
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()

    async def next(self) -> bytes:
        """The next part; b"" at the end."""
        if not self.chunked:
            return await self.reader.read(65536)
        size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:  # then trailer lines, none usually, up to a blank one
            while await self.reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b""
        return (await self.reader.readexactly(size + 2))[:-2]


class EventStream:
    """text/event-stream bytes in, (event, data) pairs out. Lines may end in
    CRLF, LF or CR; an event ends at a blank line; comment lines (`: ping`)
    are counted, not returned."""

    def __init__(self) -> None:
        self.buffer = b""
        self.after_cr = False  # the last part ended in CR: an LF first in the next is its pair
        self.comments = 0
        self.retry_ms: int | None = None

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        if self.after_cr and data.startswith(b"\n"):
            data = data[1:]
        self.after_cr = data.endswith(b"\r")
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self.buffer += data
        if b"\n\n" not in self.buffer:
            return []
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        return [found for block in blocks if (found := self._event(block))]

    def _event(self, block: bytes) -> tuple[str, str] | None:
        event, data = "message", []
        for line in block.decode().split("\n"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "retry" and value.isdigit():
                self.retry_ms = int(value)
            elif name == "" and line:
                self.comments += 1
        return (event, "\n".join(data)) if data else None


async def open_stream(host: str, port: int, path: str
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]]:
    """Connect and ask for the stream; HttpError unless 200 text/event-stream."""
    reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT)
    try:
        writer.write(request(host, port, path, {"Accept": "text/event-stream"}))
        status, headers = await read_head(reader)
        kind = headers.get("content-type", "")
        if status != 200 or not kind.startswith("text/event-stream"):
            raise HttpError(status, kind)
    except BaseException:
        writer.close()
        raise
    return reader, writer, headers
