"""Request lines as clients really send them: raw UTF-8 served, the unreadable refused in JSON.

Browsers percent-encode non-ASCII in the address bar, but curl (before 8.x), wget, many scripts
and HTTP libraries in other languages send the UTF-8 bytes of a query string as typed. Both of
uvicorn's HTTP/1.1 parsers refuse them (llhttp and h11 accept only visible ASCII in the request
target) with a plain-text 400 "Invalid HTTP request received." before the application sees
anything, so no middleware can help, and neither parser has an option to relax it.

This protocol is uvicorn's httptools one (the fast parser, kept for tiles) with three changes:

- the bytes of each request line from 0x80 up are percent-encoded before the parser sees them,
  which is exactly what a browser would have sent. Such bytes are never valid in a request
  line, so a request that was accepted before is passed on unchanged; header lines and bodies
  are never touched;
- a request line longer than :data:`MAX_REQUEST_LINE` is refused with a 414. httptools' URL
  splitter keeps offsets in 16 bits and fails on a longer target anyway; the limit makes that a
  clear answer instead of a parser error, and bounds what one request line may make the server
  buffer: past the limit, the rest of the request's head is read and dropped;
- what the parser cannot read at all is answered in the service's one error shape
  (geo.errors.error_body, ``application/json``), like every other 4xx, instead of plain text.

`geo serve` selects it with uvicorn's `http=` setting.

A request line is recognised as the first line of a connection and the first line after a
message completes. A pipelined request whose line begins in the same chunk as the end of the
previous request is fed as received (a 400 if it holds raw UTF-8, as before): its line is already
partly inside the parser. No common client pipelines.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from geo.errors import error_body

PROTOCOL = "geo.request_lines:RequestLineProtocol"  # uvicorn's `http=` setting
# Bytes of a request line as the parser sees it (after percent-encoding). A CQL2 filter may
# have GEO_MAX_FILTER_BYTES (16 KiB) of Chinese text, three times that once encoded; 64 KiB
# less the method and version is what httptools can split.
MAX_REQUEST_LINE = 65_000
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


def encode_high_bytes(line: bytes) -> bytes:
    """Percent-encode the bytes from 0x80 up (`天` -> `%E5%A4%A9`); ASCII stays as it is."""
    return _HIGH_BYTE.sub(lambda m: b"%%%02X" % m.group()[0], line)


def error_response(
    status: int, code: str, message: str, headers: list[tuple[bytes, bytes]]
) -> bytes:
    """A whole HTTP/1.1 response in the service's error shape, closing the connection;
    ``headers``: the server's own (date, server), as uvicorn sends with every response."""
    body = orjson.dumps(error_body(code, message))
    return b"".join(
        [
            STATUS_LINE[status],
            *(name + b": " + value + b"\r\n" for name, value in headers),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class RequestLineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, percent-encoding raw UTF-8 in request lines, bounding
    their length and answering what it cannot parse in JSON."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # True while the bytes up to the next LF are (the rest of) a request line.
        self._in_request_line = True
        # Bytes of the current request line fed to the parser so far.
        self._line_bytes = 0
        # Set when a message completes, cleared when the parser begins the next one.
        self._next_is_fresh = False
        # Not None while an overlong request is read to its end: its last bytes seen.
        self._overlong_tail: bytes | None = None

    def data_received(self, data: bytes) -> None:
        if self._overlong_tail is not None:
            self._discard_overlong(data)
            return
        line_continues = False
        if self._in_request_line:
            end = data.find(b"\n")
            if end < 0:
                data, line_continues = encode_high_bytes(data), True
                line = len(data)
            else:
                head = encode_high_bytes(data[:end])
                data, line = head + data[end:], len(head)
            self._line_bytes += line
            if self._line_bytes > MAX_REQUEST_LINE:
                self._overlong_tail = b""
                self._discard_overlong(data)
                return
        self._next_is_fresh = False
        super().data_received(data)
        self._in_request_line = line_continues or self._next_is_fresh
        if not self._in_request_line or self._next_is_fresh:
            self._line_bytes = 0

    def _discard_overlong(self, data: bytes) -> None:
        """Drop the overlong request up to the end of its headers, then answer 414.

        Answering at once and closing would reset the connection while the client is still
        sending, and a reset discards the answer on its side; so the rest is read (not kept:
        only the last three bytes, in case the blank line is split between chunks)."""
        assert self._overlong_tail is not None
        seen = self._overlong_tail + data
        if b"\r\n\r\n" not in seen and b"\n\n" not in seen:
            self._overlong_tail = seen[-3:]
            return
        self._refuse(
            414,
            "URITooLong",
            f"the request line is longer than {MAX_REQUEST_LINE} bytes; send long "
            "filters or lists in a POST body",
        )

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes its parser refuses, in the service's error shape."""
        self._refuse(400, "InvalidRequest", f"the HTTP request cannot be parsed: {msg}")

    def _refuse(self, status: int, code: str, message: str) -> None:
        self.logger.warning("%s: %s", code, message)
        headers = self.server_state.default_headers
        self.transport.write(error_response(status, code, message, headers))
        self.transport.close()

    def on_message_begin(self) -> None:
        self._next_is_fresh = False
        super().on_message_begin()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._next_is_fresh = True
