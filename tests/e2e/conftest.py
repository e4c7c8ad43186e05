"""What the browser tests share: `geo serve` in its own process against the test database, and
one headless Chromium per module (a module sets `WINDOW = "w,h"` for a taller page; a module
whose server needs data loaded first defines its own `server`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import headless_chromium
from tests.live_server import live_server


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with live_server() as running:
        yield running.base


@pytest.fixture(scope="module")
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    with headless_chromium(window=getattr(request.module, "WINDOW", "1280,1600")) as browser:
        yield browser
