"""The geocoder's cache of element spellings, shared by request threads."""

from __future__ import annotations

import threading

import pytest

from addressbook.geocoding import matching
from geo.db import session_scope


def test_threads_spell_while_the_cache_starts_afresh(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch geocoding and concurrent requests read the cache while another thread fills it,
    and a full cache starts afresh: no reader may lose a spelling it was promised (a KeyError
    when the shared dict was cleared under it) or get another value's spelling."""
    cache = matching._SpellingCache()
    monkeypatch.setattr(matching, "_spellings", cache)
    # Room for two calls' spellings: most calls below start afresh.
    monkeypatch.setattr(matching, "_SPELLING_CACHE", 2500)
    failures: list[BaseException] = []

    def spell(worker: int) -> None:
        try:
            with session_scope() as session:
                for n in range(20):
                    values = [str(100_000 * (worker + 1) + 1000 * n + k) for k in range(1000)]
                    texts: list[dict[str, str | None]] = [
                        {"house_number": v, "room": v} for v in values
                    ]
                    found = matching.standardise(session, texts)
                    assert [f["house_number"] for f in found] == [f"{v}号" for v in values]
                    assert [f["room"] for f in found] == [f"{v}室" for v in values]
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=spell, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[0]
    assert len(cache.known) <= 2500
