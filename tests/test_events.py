"""GET /events (tiles.events) against a real `geo serve`: changes told only for layers the caller
may read, unknown and unreadable layers alike, access revoked mid-stream, tile tokens (and the
stream's end when one expires), heartbeats, the stream limit, the shipped nginx config, and the
400s of malformed layer lists.

Streams are read in the test's own thread with a deadline on every read (the server sends a
heartbeat every 0.2 s, and httpx's read timeout bounds each socket read): no test can hang.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bench.nginx_proxy import nginx_proxy
from geo.auth import Principal
from geo.version_watch import QUEUE_SIZE, VersionWatch
from tests.conftest import Dept
from tests.layers_helpers import CENTER, make_points_layer
from tests.live_server import LiveServer, live_server
from tiles import events, tokens
from tiles.settings import tile_settings

MAX_STREAMS = 4
HEARTBEAT = 0.2
READ_TIMEOUT = 5.0

Event = tuple[str, Any]


def feature(name: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [CENTER[0], CENTER[1]]},
        "properties": {"name": name},
    }


class Stream:
    """One /events response: events as (name, JSON data), heartbeats as ("", "heartbeat")."""

    def __init__(self, client: httpx.Client, url: str, headers: dict[str, str] | None) -> None:
        self.response = client.send(client.build_request("GET", url, headers=headers), stream=True)
        self.status = self.response.status_code
        self._lines = self.response.iter_lines() if self.status == 200 else iter(())
        self.closed = False

    def next(self, within: float = 3.0, comments: bool = False) -> Event | None:
        """The next event (or comment) within `within` seconds; None if none came (or the
        stream ended)."""
        deadline = time.monotonic() + within
        name, data = "message", None
        while time.monotonic() < deadline:
            line = next(self._lines, None)  # each read bounded by READ_TIMEOUT
            if line is None:
                self.closed = True
                return None
            if line.startswith(":"):
                if comments:
                    return "", line[1:].strip()
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
            elif line == "" and data is not None:
                return name, data
        return None

    def events(self, within: float) -> list[Event]:
        """Every event that comes in the next `within` seconds."""
        found = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0 and not self.closed:
            got = self.next(left)
            if got is not None:
                found.append(got)
        return found

    def close(self) -> None:
        self.response.close()


@pytest.fixture(scope="module")
def server(client: TestClient) -> Iterator[LiveServer]:
    env = {"GEO_EVENTS_HEARTBEAT": str(HEARTBEAT), "GEO_EVENTS_MAX_STREAMS": str(MAX_STREAMS)}
    with live_server(workers=1, env=env) as live:
        yield live


@pytest.fixture
def stream(server: LiveServer) -> Iterator[Callable[..., Stream]]:
    """Opens streams on one client (each its own connection); all closed after the test."""
    opened: list[Stream] = []
    timeout = httpx.Timeout(10, read=READ_TIMEOUT)
    limits = httpx.Limits(max_connections=MAX_STREAMS + 2)
    with httpx.Client(base_url=server.base, timeout=timeout, limits=limits) as http:

        def open_stream(
            query: str = "", headers: dict[str, str] | None = None, via: str = ""
        ) -> Stream:
            s = Stream(http, f"{via}/events{query}", headers)
            opened.append(s)
            return s

        try:
            yield open_stream
        finally:
            for s in opened:
                s.close()


def add(server: LiveServer, lid: str, headers: dict[str, str], name: str) -> None:
    r = httpx.post(
        f"{server.base}/collections/{lid}/items", json=feature(name), headers=headers, timeout=10
    )
    assert r.status_code == 201, r.text


def ready_of(s: Stream) -> dict[str, int]:
    assert s.status == 200, s.response.read()
    got = s.next()
    assert got is not None and got[0] == "ready", got
    return dict(got[1]["layers"])


def test_only_readable_layers_and_unknown_alike(
    client: TestClient,
    make_department: Callable[..., Dept],
    server: LiveServer,
    stream: Callable[..., Stream],
) -> None:
    owner, other = make_department(), make_department()
    public = make_points_layer(client, owner.editor, n=3, access="public")
    private = make_points_layer(client, owner.editor, n=3, access="private")
    unreadable = stream(f"?layers={public},{private}", other.viewer)
    unknown = stream(f"?layers={public},no_such_layer", other.viewer)
    first = ready_of(unreadable)
    assert first.keys() == {public}
    assert ready_of(unknown) == first  # the private layer and a missing one look the same
    everything = stream("", owner.viewer)
    assert {public, private} <= ready_of(everything).keys()
    add(server, private, owner.editor, "secret")
    add(server, public, owner.editor, "open")
    for s in (unreadable, unknown):
        # one event, for the public layer; nothing about the private one, ever
        assert s.events(1.0) == [("version", {"layer": public, "version": first[public] + 1})]
    told = everything.events(1.0)
    assert {e[1]["layer"] for e in told} == {public, private}


def test_access_revoked_mid_stream(
    client: TestClient,
    make_department: Callable[..., Dept],
    server: LiveServer,
    stream: Callable[..., Stream],
) -> None:
    owner, friend = make_department(), make_department()
    lid = make_points_layer(client, owner.editor, n=3, access="private")
    r = client.post(
        f"/collections/{lid}/grants",
        json={"grantee": friend.code, "level": "view"},
        headers=owner.editor,
    )
    assert r.status_code == 201, r.text
    grant = r.json()["id"]
    s = stream(f"?layers={lid}", friend.viewer)
    version = ready_of(s)[lid]
    add(server, lid, owner.editor, "seen")
    assert s.events(1.0) == [("version", {"layer": lid, "version": version + 1})]
    r = client.delete(f"/collections/{lid}/grants/{grant}", headers=owner.editor)
    assert r.status_code in (200, 204), r.text
    add(server, lid, owner.editor, "unseen")
    assert s.events(1.0) == []  # neither the revocation nor the edit after it
    assert s.next(comments=True) == ("", "heartbeat")  # the stream itself goes on


def test_a_tile_token_reads_its_layers_only(
    client: TestClient,
    make_department: Callable[..., Dept],
    server: LiveServer,
    stream: Callable[..., Stream],
) -> None:
    owner = make_department()
    mine = make_points_layer(client, owner.editor, n=1, access="private")
    other = make_points_layer(client, owner.editor, n=1, access="private")
    r = client.post("/tiles/token", json={"layers": [mine]}, headers=owner.viewer)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    s = stream(f"?token={token}")
    version = ready_of(s)[mine]
    assert ready_of(stream(f"?token={token}&layers={mine}")) == {mine: version}
    outside = stream(f"?token={token}&layers={mine},{other}")
    assert outside.status == 403
    assert outside.response.read() and outside.response.json()["code"] == "TokenScope"
    add(server, other, owner.editor, "not covered")
    add(server, mine, owner.editor, "covered")
    assert s.events(1.0) == [("version", {"layer": mine, "version": version + 1})]


def test_a_stream_ends_when_its_token_expires(
    client: TestClient,
    make_department: Callable[..., Dept],
    stream: Callable[..., Stream],
) -> None:
    owner = make_department()
    lid = make_points_layer(client, owner.editor, n=1, access="private")
    issued = time.time() - tile_settings().token_ttl + 1.5  # expires 1.5 s from now
    token, _ = tokens.mint(Principal(owner.code, "viewer", None, None), [lid], now=issued)
    s = stream(f"?token={token}")
    assert ready_of(s).keys() == {lid}
    s.events(2.5)
    assert s.closed  # the server ended it
    again = stream(f"?token={token}")
    assert again.status == 401
    assert again.response.read() and again.response.json()["code"] == "TokenExpired"


def test_heartbeats_the_stream_limit_and_slots_freed(
    client: TestClient, admin_headers: dict[str, str], stream: Callable[..., Stream]
) -> None:
    lid = make_points_layer(client, admin_headers, n=1)
    streams = [stream(f"?layers={lid}") for _ in range(MAX_STREAMS)]
    for s in streams:
        assert ready_of(s).keys() == {lid}
    assert streams[0].next(comments=True) == ("", "heartbeat")
    refused = stream(f"?layers={lid}")
    assert refused.status == 503
    assert refused.response.read() and refused.response.json()["code"] == "TooManyStreams"
    assert refused.response.headers["retry-after"] == "2"
    # Closed streams give their slots back (the server hears the disconnection at once), and
    # the streams opened then work like the first ones.
    for s in streams:
        s.close()
    deadline = time.monotonic() + 3
    again: list[Stream] = []
    while len(again) < MAX_STREAMS and time.monotonic() < deadline:
        s = stream(f"?layers={lid}")
        if s.status == 200:
            again.append(s)
        else:
            s.close()
            time.sleep(0.05)
    assert len(again) == MAX_STREAMS
    for s in again:
        assert ready_of(s).keys() == {lid}


def test_through_the_shipped_nginx_config(
    client: TestClient,
    admin_headers: dict[str, str],
    server: LiveServer,
    stream: Callable[..., Stream],
) -> None:
    """Events pass nginx as they are sent (unbuffered), and a client leaving nginx frees its
    stream's slot on the service."""
    lid = make_points_layer(client, admin_headers, n=1)
    with nginx_proxy(server.base.removeprefix("http://")) as nginx:
        proxied = stream(f"?layers={lid}", via=nginx.base)
        version = ready_of(proxied)[lid]
        assert proxied.next(comments=True) == ("", "heartbeat")
        add(server, lid, admin_headers, "through nginx")
        assert proxied.events(1.0) == [("version", {"layer": lid, "version": version + 1})]
        more = [stream(f"?layers={lid}", via=nginx.base) for _ in range(MAX_STREAMS - 1)]
        assert [s.status for s in more] == [200] * (MAX_STREAMS - 1)
        for s in (proxied, *more):
            s.close()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            again = stream(f"?layers={lid}", via=nginx.base)
            if again.status == 200:
                break
            again.close()
            time.sleep(0.05)
        assert again.status == 200 and ready_of(again) == {lid: version + 1}


@pytest.mark.parametrize(
    ("layers", "code"),
    [
        ("a,,b", "InvalidParameterValue"),
        ("a,a", "DuplicateLayer"),
        (",".join(f"l{i}" for i in range(21)), "TooManyLayers"),
        ("x" * 201, "InvalidParameterValue"),
    ],
)
def test_malformed_layer_lists_are_400(server: LiveServer, layers: str, code: str) -> None:
    r = httpx.get(f"{server.base}/events", params={"layers": layers}, timeout=READ_TIMEOUT)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == code


def test_a_subscriber_that_falls_behind_is_dropped() -> None:
    async def scenario() -> None:
        watch = VersionWatch("postgresql://unused")
        slow = watch.subscribe({"layer:a"})
        quick = watch.subscribe({"layer:b"})
        for version in range(1, QUEUE_SIZE + 2):
            watch._heard(f"{version}:layer:a")
        assert slow.dropped and slow.queue.qsize() == QUEUE_SIZE
        watch._heard("1:layer:b")
        assert not quick.dropped and quick.queue.get_nowait() == ("layer:b", 1)
        watch._heard(f"{QUEUE_SIZE + 5}:layer:a")  # no longer followed: nothing more queued
        assert slow.queue.qsize() == QUEUE_SIZE

    asyncio.run(scenario())


def test_a_stream_that_falls_behind_is_told_overflow_and_ends() -> None:
    async def scenario() -> list[bytes]:
        watch = VersionWatch("postgresql://unused")
        subscriber = watch.subscribe({"layer:a"})
        for version in range(1, QUEUE_SIZE + 2):
            watch._heard(f"{version}:layer:a")
        stream = events.events(
            Principal(None, None, None, None),
            {"a": 0},
            {"layer:a": ["a"]},
            subscriber,
            time.time() + 60,
        )
        return [chunk async for chunk in stream]

    chunks = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert chunks[1] == events.event("ready", {"layers": {"a": 0}})
    assert chunks[2:] == [
        events.event("overflow", {"message": "too far behind; reconnect and refresh"})
    ]
