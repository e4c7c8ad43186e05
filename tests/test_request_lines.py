"""Request lines as clients send them, served by `geo serve` (geo/request_lines.py).

The documented examples (`curl -s 'localhost:8000/addresses/geocode?q=天津市河西区友谊路32号'`)
send the query's UTF-8 bytes as typed; uvicorn's parsers answered them with a plain-text 400.
A request line of more than 64 KiB, or one the parser cannot read at all, was also a plain-text
400 that the OpenAPI document does not describe (schemathesis found it with a long `q` of
four-byte characters): both are now answered in the service's JSON error shape. These tests
drive a real server process with a real curl and with raw sockets.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest

from geo.request_lines import MAX_REQUEST_LINE, encode_high_bytes
from tests.live_server import LiveServer, live_server

TEXT = "天津市河西区友谊路32号"


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    with live_server() as srv:
        yield srv


def test_encode_high_bytes_only_touches_non_ascii() -> None:
    line = "GET /a?q=友谊&b=%20 HTTP/1.1".encode()
    assert encode_high_bytes(line) == b"GET /a?q=%E5%8F%8B%E8%B0%8A&b=%20 HTTP/1.1"
    assert encode_high_bytes(b"GET /health HTTP/1.1") == b"GET /health HTTP/1.1"


def test_curl_with_raw_utf8_query(server: LiveServer) -> None:
    """curl sends the query's bytes unencoded (checked: the parser used to refuse them)."""
    target = f"{server.base.removeprefix('http://')}/addresses/parse?q={TEXT}"
    done = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", target], capture_output=True, check=True
    )
    body, _, status = done.stdout.rpartition(b"\n")
    assert status == b"200", done.stdout
    assert orjson.loads(body)["q"] == TEXT


def _exchange(sock: socket.socket) -> bytes:
    """Read one response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n", 1)[0] + b"\n" + body


def test_keep_alive_and_split_request_lines(server: LiveServer) -> None:
    """Several requests on one connection; a request line cut inside a UTF-8 character; an
    ASCII request after a UTF-8 one. Each is a 200 with the text decoded."""
    url = urlsplit(server.base)
    assert url.hostname and url.port
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        line = f"GET /addresses/parse?q={TEXT} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for pieces in ([line], [line[:27], line[27:40], line[40:]], [line]):
            for piece in pieces:
                sock.sendall(piece)
            status, _, body = _exchange(sock).partition(b"\n")
            assert status == b"HTTP/1.1 200 OK", body
            assert orjson.loads(body)["q"] == TEXT
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _exchange(sock).startswith(b"HTTP/1.1 200 OK")


def _one_response(server: LiveServer, request: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Send ``request`` on a fresh connection; the status line, headers and body sent back
    before the server closed it."""
    url = urlsplit(server.base)
    assert url.hostname and url.port
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    return status, headers, body


@pytest.mark.parametrize("character", ["a", "𝐀"])
def test_overlong_request_line_is_a_json_414(server: LiveServer, character: str) -> None:
    """A target past the limit (here of ASCII, or of four-byte characters that grow 3x when
    encoded) is refused in JSON as soon as it passes the limit; the server keeps serving."""
    target = f"/catalogue/collections/layers/items?q={character * 100_000}".encode()
    status, headers, body = _one_response(
        server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status.startswith(b"HTTP/1.1 414"), (status, body[:200])
    assert headers[b"content-type"] == b"application/json"
    error = orjson.loads(body)
    assert error["code"] == "URITooLong" and str(MAX_REQUEST_LINE) in error["message"]
    assert server.alive()
    status, _, _ = _one_response(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == b"HTTP/1.1 200 OK"


def test_long_request_line_within_the_limit_reaches_the_app(server: LiveServer) -> None:
    """Just under the limit the app answers (its own 400: `q` is bounded far lower)."""
    prefix = b"GET /catalogue/collections/layers/items?q="
    fill = b"a" * (MAX_REQUEST_LINE - len(prefix) - len(b" HTTP/1.1\r"))
    status, headers, body = _one_response(server, prefix + fill + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400"), (status, body[:200])
    assert orjson.loads(body)["code"] == "InvalidParameterValue"
    assert b"x-request-id" in headers  # the application answered, not the protocol


def test_unparseable_request_is_a_json_400(server: LiveServer) -> None:
    status, headers, body = _one_response(server, b"GET /health HTTP/9.9 what\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400"), status
    assert headers[b"content-type"] == b"application/json"
    assert orjson.loads(body)["code"] == "InvalidRequest"
