"""Request lines with raw UTF-8 (`GET /addresses/geocode?q=天津市河西区友谊路32号`) are served.

Browsers percent-encode non-ASCII in the address bar, but curl (before 8.x), wget, many scripts
and HTTP libraries in other languages send the UTF-8 bytes of a query string as typed. Both of
uvicorn's HTTP/1.1 parsers refuse them (llhttp and h11 accept only visible ASCII in the request
target) with a plain-text 400 "Invalid HTTP request received." before the application sees
anything, so no middleware can help, and neither parser has an option to relax it.

This protocol is uvicorn's httptools one (the fast parser, kept for tiles) with one change: the
bytes of each request line from 0x80 up are percent-encoded before the parser sees them, which
is exactly what a browser would have sent. Such bytes are never valid in a request line, so a
request that was accepted before is passed on unchanged; header lines and bodies are never
touched. `geo serve` selects it with uvicorn's `http=` setting.

A request line is recognised as the first line of a connection and the first line after a
message completes. A pipelined request whose line begins in the same chunk as the end of the
previous request is fed as received (a 400 if it holds raw UTF-8, as before): its line is already
partly inside the parser. No common client pipelines.
"""

from __future__ import annotations

import re
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "geo.utf8_targets:Utf8TargetProtocol"  # uvicorn's `http=` setting
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


def encode_high_bytes(line: bytes) -> bytes:
    """Percent-encode the bytes from 0x80 up (`天` -> `%E5%A4%A9`); ASCII stays as it is."""
    return _HIGH_BYTE.sub(lambda m: b"%%%02X" % m.group()[0], line)


class Utf8TargetProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, percent-encoding raw UTF-8 in request lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # True while the bytes up to the next LF are (the rest of) a request line.
        self._in_request_line = True
        # Set when a message completes, cleared when the parser begins the next one.
        self._next_is_fresh = False

    def data_received(self, data: bytes) -> None:
        line_continues = False
        if self._in_request_line:
            end = data.find(b"\n")
            if end < 0:
                data, line_continues = encode_high_bytes(data), True
            else:
                data = encode_high_bytes(data[:end]) + data[end:]
        self._next_is_fresh = False
        super().data_received(data)
        self._in_request_line = line_continues or self._next_is_fresh

    def on_message_begin(self) -> None:
        self._next_is_fresh = False
        super().on_message_begin()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._next_is_fresh = True
