"""Which layers a caller may read, with their data versions, at no database cost on a cache hit.

Every tile request must see the current data version of its layers (that is what invalidates
cached tiles after an edit in any worker), and must be checked against the catalogue's access
rules. The catalogue's own lookup (layers.catalogue.readable_sources) runs through the ORM in a
transaction, about 0.6 ms, more than a cached tile costs to serve. So:

- the versions come from the worker's memory (geo.version_watch, kept current by LISTEN/NOTIFY
  from the transactions that bump them); while its listener is down, or for names beyond what it
  holds, they are read per request with one prepared statement on the async tile pool;
- the catalogue's answer is remembered under (caller's department and role, layer ids, those
  versions). The catalogue bumps a layer's version on every change to it, its access level and
  sharing included (layers.catalogue.update_layer / delete_layer), so a changed layer has a new
  key and is looked up afresh: a remembered answer is never used for a layer that changed.
  Unknown or unreadable ids are not remembered; each such request asks the catalogue.

With read replicas (GEO_READ_URLS) the versions are read per request from the replica the tiles
are read from (geo.db.read_engine picks one per request, and tile_pool follows it), never from
memory: a notice comes from the primary and can arrive before the replica has replayed the
change, and a tile made from the replica's older data must not be cached under the new version.
The price is that an access change reaches tile requests once the replica has replayed it
(replication lag), and a replica's cache hit still costs one query.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cachetools import LRUCache
from starlette.concurrency import run_in_threadpool

from geo import version_watch
from geo.auth import Principal
from geo.db import session_scope
from geo.settings import get_settings
from geo.sources import LayerSource
from geo.versions import versions_async
from layers.catalogue import readable_sources, version_key
from tiles.pool import tile_pool

REMEMBERED = 4096

AccessKey = tuple[str | None, str | None, tuple[str, ...], tuple[int, ...]]


async def current_versions(ids: Sequence[str]) -> tuple[int, ...]:
    keys = [version_key(i) for i in ids]
    watch = None if get_settings().read_urls else version_watch.current()
    found = await watch.versions(keys) if watch is not None else None
    if found is None:
        pool = await tile_pool()
        async with pool.connection() as conn:
            found = await versions_async(conn, keys)
    return tuple(found[k] for k in keys)


def _catalogue_lookup(who: Principal, ids: Sequence[str]) -> list[LayerSource]:
    with session_scope() as session:
        return readable_sources(session, who, list(ids))


class AccessCache:
    """The catalogue's answers, the `size` most recently used kept (a cachetools LRUCache,
    which is not thread-safe: every access holds the lock)."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._entries: LRUCache[AccessKey, list[LayerSource]] = LRUCache(size)
        self._lock = threading.Lock()

    async def readable(self, who: Principal, ids: Sequence[str]) -> list[LayerSource]:
        """The layers at their current versions, or the catalogue's 404 for the first one the
        caller may not read."""
        versions = await current_versions(ids)
        key: AccessKey = (who.department, who.role, tuple(ids), versions)
        with self._lock:
            sources = self._entries.get(key)
        if sources is None:
            sources = await run_in_threadpool(_catalogue_lookup, who, ids)
            # Store only an answer made at the versions we keyed it by (an edit may have landed
            # between the two reads).
            if tuple(s.version for s in sources) == versions:
                with self._lock:
                    self._entries[key] = sources
        return sources


access_cache = AccessCache()
