"""The address library's sample, loaded once by `make run`: the Tianjin divisions and district
boundaries (with derived subdistrict and community polygons), demo grids, 200,000 generated
addresses and the demo's named places, all through the same import code an operator uses."""

from __future__ import annotations

import io

from sqlalchemy.orm import Session

from addressbook.areas.import_areas import import_areas
from addressbook.areas.import_grids import save_grids
from addressbook.ingest import demo, demo_places, demo_words
from addressbook.ingest.importer import import_addresses
from addressbook.places.read import read_places
from addressbook.places.store import import_places
from geo.auth import Principal

SAMPLE_ADDRESSES = 200_000
SAMPLE_SEED = 1
SAMPLE = Principal("platform", "admin", "sample")


def load_sample(session: Session, count: int = SAMPLE_ADDRESSES) -> None:
    import_areas(session)
    session.flush()
    communities = demo.load_communities(session)
    save_grids(session, demo.generate_grids(communities, SAMPLE_SEED), demo.GRID_SOURCE)
    data = io.BytesIO()
    # Real main road names first (河西区友谊路...): the README's examples geocode them.
    demo.write_csv(data, communities, count, SAMPLE_SEED, main_roads=demo_words.MAIN_ROADS)
    data.seek(0)
    import_addresses(session, data, "sample-addresses.csv", SAMPLE)
    places = demo_places.places_csv(communities, SAMPLE_SEED)
    rows = read_places(io.BytesIO(places), "demo-places.csv")
    import_places(session, rows, demo_places.PLACE_SOURCE, SAMPLE)
