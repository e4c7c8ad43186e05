"""Data versions held in each worker's memory, kept current by PostgreSQL LISTEN/NOTIFY.

Caches key on data versions (geo.versions); reading them on every request cost a database round
trip even when the answer was in memory. So each worker (each event loop) keeps one dedicated
connection that LISTENs on `geo.versions.CHANNEL`, where every `bump` announces its new version
when its transaction commits, and answers version lookups from memory:

- a name asked for the first time is read once (on a second, small connection) and then held;
  at most NAMES_HELD names are held, further names are answered None (read per request);
- every REFRESH_SECONDS the listener re-reads every held name, the safety net for anything a
  notice could miss (a version lowered by a restore, a lost notice);
- while the listener is disconnected (database restart, failover, a killed backend) the watch
  is not live and answers None, so callers read versions per request as before, until it has
  reconnected, LISTENs again and has re-read every held name;
- subscribers (the /events streams) get each change of the names they follow through bounded
  asyncio queues; one that falls QUEUE_SIZE changes behind is dropped, not allowed to grow.

A notice reaches the other workers within milliseconds, but its own worker could answer the
writer's next request before its listener has read it, and serve that request the tile from
before the write. So when a session commits a bump, the names it bumped are forgotten by this
process's watches before the commit returns (`forget`, run on each watch's loop): asked for
again, they are read from the database, which holds the commit.

Notices come from the primary. With read replicas, a notice can arrive before a replica has
replayed the change: callers that read data from replicas must read versions from the same
replica instead (tiles.access does).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection
from sqlalchemy import event
from sqlalchemy.orm import Session

from geo.db import database_url, libpq_url
from geo.versions import BUMPED, CHANNEL, parse_notice, versions_async

NAMES_HELD = 10_000
REFRESH_SECONDS = 5.0
RECONNECT_SECONDS = 0.5
QUEUE_SIZE = 256
# How long a committing thread waits for a watch's loop to forget what it bumped; a loop that
# busy is a loop whose next request is as far away.
FORGET_WAIT_SECONDS = 1.0
LISTENER_NAME = "geo-version-listen"
READER_NAME = "geo-version-read"
# A dead peer (a pulled cable, a failed-over host) is noticed within seconds, not TCP's hours.
CONNECT_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}

log = logging.getLogger(__name__)


class Subscriber:
    """One follower of some names: their changes arrive on `queue` as (name, version)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False


class VersionWatch:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._held: dict[str, int] = {}
        # Names being read for the first time, and the highest notice heard for them meanwhile:
        # a notice arriving during that read must not be lost to the read's older answer.
        self._reading: Counter[str] = Counter()
        self._noted: dict[str, int] = {}
        # Held names this process has since committed a bump of (see forget).
        self._stale: set[str] = set()
        self._live = False
        self._generation = 0  # bumped on every disconnect: reads begun before it are void
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._reader: AsyncConnection[Any] | None = None
        self._reader_lock = asyncio.Lock()
        self.backend_pid: int | None = None

    @property
    def live(self) -> bool:
        return self._live

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="version-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._reader is not None:
            await self._reader.close()
        self._live = False

    async def versions(self, names: Sequence[str]) -> dict[str, int] | None:
        """Current versions from memory (names never written: 0), or None when the caller must
        read them itself: the listener is not live, or the names would exceed NAMES_HELD."""
        if not self._live:
            return None
        missing = [n for n in dict.fromkeys(names) if n not in self._held or n in self._stale]
        if missing and not await self._learn(missing):
            return None
        return {n: self._held[n] for n in names}

    def forget(self, names: Iterable[str]) -> None:
        """Names whose bump this process has just committed: read again when next asked for.
        Reads begun before are void too (their answer may predate the commit). They stay held
        meanwhile, so that the re-read after a reconnection covers them and subscribers hear of
        the new version when it is read, whether the notice or the read comes first."""
        self._stale.update(name for name in names if name in self._held)
        self._generation += 1

    def subscribe(self, names: set[str]) -> Subscriber:
        subscriber = Subscriber(names)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def _learn(self, names: list[str]) -> bool:
        if len(self._held) + len(names) > NAMES_HELD:
            return False
        generation = self._generation
        self._reading.update(names)
        try:
            found = await self._read(names)
            if found is None or generation != self._generation:
                return False
            for name, version in found.items():
                latest = max(version, self._noted.get(name, 0))
                if name in self._held:  # a forgotten name: a higher version is news
                    self._apply({name: latest}, raise_only=True)
                    self._stale.discard(name)
                else:
                    self._held[name] = latest
            return True
        finally:
            self._reading.subtract(names)
            for name in names:
                if self._reading[name] <= 0:
                    del self._reading[name]
                    self._noted.pop(name, None)

    async def _read(self, names: list[str]) -> dict[str, int] | None:
        async with self._reader_lock:
            try:
                if self._reader is None or self._reader.closed:
                    self._reader = await AsyncConnection.connect(
                        self._conninfo, application_name=READER_NAME, **CONNECT_KWARGS
                    )
                return await versions_async(self._reader, names)
            except psycopg.Error as error:
                log.warning("version watch: reading versions failed (%s)", error)
                if self._reader is not None:
                    await self._reader.close()
                self._reader = None
                return None

    async def _listen(self) -> None:
        while True:
            try:
                connecting = AsyncConnection.connect(
                    self._conninfo, application_name=LISTENER_NAME, **CONNECT_KWARGS
                )
                async with await connecting as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    await self._reread(conn)
                    self._live = True
                    log.info("version watch: listening (backend %s)", self.backend_pid)
                    while True:
                        async for notice in conn.notifies(timeout=REFRESH_SECONDS):
                            self._heard(notice.payload)
                        await self._reread(conn)
            except psycopg.Error as error:
                log.warning(
                    "version watch: listener lost (%s); reading versions per request", error
                )
            finally:
                self._live = False
                self._generation += 1
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _reread(self, conn: AsyncConnection[Any]) -> None:
        """Every held name at its current version. Set, not max: a restore may lower one. Notices
        queued meanwhile are handled after it and can only raise it."""
        names = list(self._held)
        if names:
            self._apply(await versions_async(conn, names), raise_only=False)

    def _heard(self, payload: str) -> None:
        notice = parse_notice(payload)
        if notice is None:
            return
        name, version = notice
        if name in self._reading:
            self._noted[name] = max(version, self._noted.get(name, 0))
        if name in self._held:
            self._apply({name: version}, raise_only=True)
        else:
            self._announce(name, version)

    def _apply(self, found: Mapping[str, int], raise_only: bool) -> None:
        for name, version in found.items():
            old = self._held.get(name)
            if old == version or (raise_only and old is not None and version < old):
                continue
            self._held[name] = version
            self._announce(name, version)

    def _announce(self, name: str, version: int) -> None:
        for subscriber in list(self._subscribers):
            if name not in subscriber.names:
                continue
            try:
                subscriber.queue.put_nowait((name, version))
            except asyncio.QueueFull:
                subscriber.dropped = True
                self._subscribers.discard(subscriber)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, VersionWatch]
_watches = weakref.WeakKeyDictionary()


def _on_loop(loop: asyncio.AbstractEventLoop, call: Any) -> None:
    """Run `call` on `loop` and wait for it (directly when this thread is running it)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        call()
        return
    if not loop.is_running():
        return
    done = threading.Event()

    def run() -> None:
        try:
            call()
        finally:
            done.set()

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:  # closed meanwhile
        return
    done.wait(FORGET_WAIT_SECONDS)


@event.listens_for(Session, "after_commit")
def _forget_committed(session: Session) -> None:
    names = session.info.pop(BUMPED, None)
    if names:
        for loop, watch in list(_watches.items()):
            _on_loop(loop, lambda watch=watch: watch.forget(names))


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(BUMPED, None)


def current() -> VersionWatch | None:
    """This event loop's watch, if the app started one."""
    return _watches.get(asyncio.get_running_loop())


async def start() -> VersionWatch:
    """Start this loop's watch on the primary (app start-up); idempotent."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = VersionWatch(libpq_url(database_url()))
        watch.start()
    return watch


async def stop() -> None:
    watch = _watches.pop(asyncio.get_running_loop(), None)
    if watch is not None:
        await watch.stop()
