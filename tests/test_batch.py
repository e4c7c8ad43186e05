"""Batch geocoding over HTTP: CSV in, CSV out; JSON in, NDJSON or JSON out; and its refusals."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from addressbook.geocoding import batch
from geo.db import session_scope
from tests.address_library import HOUSES, ROOMS, Stored, fresh_names, load, pick

URL = "/addresses/geocode/batch"


@pytest.fixture(scope="module")
def stored(database_url: str) -> Iterator[list[Stored]]:
    load()
    with session_scope() as session:
        found = pick(session, ROOMS, n=8) + pick(session, HOUSES, n=4)
    with fresh_names():
        yield found


@pytest.fixture(scope="module")
def viewer(make_department) -> dict[str, str]:
    return make_department().viewer


def upload(content: bytes, name: str = "in.csv") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, content, "text/csv")}


def csv_of(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def test_csv_rows_come_back_in_order_with_the_match_columns(
    client: TestClient, viewer: dict[str, str], stored: list[Stored]
) -> None:
    rows = [["case_id", "地址", "note"]]
    rows += [[f"c{i}", a.full_address, "x,y"] for i, a in enumerate(stored)]
    rows.insert(3, ["empty", "", "no address"])
    rows.insert(5, ["foreign", "上海市南京东路100号", ""])
    response = client.post(URL, files=upload(csv_of(rows)), headers=viewer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    out = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["case_id"] for r in out] == [r[0] for r in rows[1:]]
    assert list(out[0]) == ["case_id", "地址", "note", *batch.MATCH_COLUMNS]
    by_case = {r["case_id"]: r for r in out}
    for i, a in enumerate(stored):
        row = by_case[f"c{i}"]
        assert row["address_id"] == str(a.id) and row["code"] == a.code
        assert row["confident"] == "true" and float(row["score"]) == 1.0
        assert (float(row["lon"]), float(row["lat"])) == pytest.approx((a.lon, a.lat))
        assert row["note"] == "x,y"  # the input's own columns survive, quoting included
    assert by_case["empty"]["address_id"] == "" and by_case["foreign"]["address_id"] == ""


def test_the_named_column_and_clashing_names(
    client: TestClient, viewer: dict[str, str], stored: list[Stored]
) -> None:
    content = csv_of([["where", "score"], [stored[0].full_address, "7"]])
    response = client.post(
        URL, params={"column": "where", "crs": "EPSG:3857"}, files=upload(content), headers=viewer
    )
    assert response.status_code == 200, response.text
    (row,) = list(csv.DictReader(io.StringIO(response.text)))
    assert row["score"] == "7" and float(row["geocode_score"]) == 1.0
    assert float(row["lon"]) > 1e7  # metres, as asked


def test_json_list_to_ndjson_and_json(
    client: TestClient, viewer: dict[str, str], stored: list[Stored]
) -> None:
    items = [{"id": 17, "address": stored[0].full_address}, stored[1].full_address, {"q": ""}]
    response = client.post(URL, json={"addresses": items}, headers=viewer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert [line.get("id") for line in lines] == [17, None, None]
    assert lines[0]["address_id"] == stored[0].id and lines[0]["confident"] is True
    assert lines[1] == {**lines[1], "address": stored[1].full_address, "address_id": stored[1].id}
    assert lines[2]["address_id"] is None
    whole = client.post(URL, params={"f": "json"}, json=items, headers=viewer)
    assert whole.headers["content-type"].startswith("application/json")
    assert [item["address_id"] for item in whole.json()] == [stored[0].id, stored[1].id, None]


def test_a_larger_batch_spans_several_chunks(
    client: TestClient, viewer: dict[str, str], stored: list[Stored]
) -> None:
    texts = [stored[i % len(stored)].full_address for i in range(batch.CHUNK + 250)]
    response = client.post(URL, json=texts, headers=viewer)
    lines = response.text.splitlines()
    assert len(lines) == len(texts)
    ids = [orjson.loads(line)["address_id"] for line in lines]
    assert ids == [stored[i % len(stored)].id for i in range(len(texts))]


def test_editors_may_use_it_anonymous_callers_may_not(
    client: TestClient, make_department, stored: list[Stored]
) -> None:
    dept = make_department()
    ok = client.post(URL, json=[stored[0].full_address], headers=dept.editor)
    assert ok.status_code == 200
    anonymous = client.post(URL, json=[stored[0].full_address])
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "Unauthorized"


@pytest.mark.parametrize(
    ("request_kwargs", "params", "status", "code"),
    [
        ({"files": upload(csv_of([["name", "city"], ["a", "b"]]))}, {}, 400, "MissingColumn"),
        (
            {"files": upload(csv_of([["address"], ["x"]]))},
            {"column": "addr2"},
            400,
            "MissingColumn",
        ),
        (
            {"files": upload("address\nCafé 1\n".encode("latin-1"))},
            {},
            400,
            "InvalidEncoding",
        ),
        ({"files": upload(b"")}, {}, 400, "EmptyFile"),
        ({"files": {"other": ("a.csv", b"address\nx\n", "text/csv")}}, {}, 400, "MissingFile"),
        (
            {"content": b"[1, 2", "headers": {"content-type": "application/json"}},
            {},
            400,
            "MalformedJSON",
        ),
        ({"json": [{"id": 1}]}, {}, 400, "InvalidInput"),
        ({"json": {"rows": []}}, {}, 400, "InvalidInput"),
        ({"json": ["x"]}, {"f": "xml"}, 400, "InvalidParameterValue"),
        ({"json": ["x"]}, {"area": "000000000000"}, 400, "UnknownArea"),
        ({"json": ["x"]}, {"crs": "EPSG:1"}, 400, "UnknownCRS"),
        (
            {"content": b"address\nx", "headers": {"content-type": "text/plain"}},
            {},
            415,
            "UnsupportedMediaType",
        ),
    ],
)
def test_bad_batches_are_refused_before_anything_is_streamed(
    client: TestClient,
    viewer: dict[str, str],
    request_kwargs: dict[str, object],
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    headers = {**viewer, **request_kwargs.pop("headers", {})}  # type: ignore[dict-item]
    response = client.post(URL, params=params, headers=headers, **request_kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.json()["message"]


def test_the_encoding_error_names_the_line(client: TestClient, viewer: dict[str, str]) -> None:
    # UTF-8 then GBK: neither encoding reads the whole file.
    content = "address\n天津市\n".encode() + "河西区友谊路32号\n".encode("gbk")
    response = client.post(URL, files=upload(content), headers=viewer)
    assert response.json()["code"] == "InvalidEncoding"
    assert response.json()["details"]["line"] == 3


def test_a_gbk_file_is_read(client: TestClient, viewer: dict[str, str]) -> None:
    content = "id,address\n1,天津市河西区友谊路32号\n".encode("gbk")
    response = client.post(URL, files=upload(content), headers=viewer)
    assert response.status_code == 200, response.text
    assert next(csv.DictReader(io.StringIO(response.text)))["address"] == "天津市河西区友谊路32号"


def test_a_field_over_the_csv_limit_is_a_400(client: TestClient, viewer: dict[str, str]) -> None:
    """Found while fuzzing: a field over the csv module's 128 KiB limit was a 500 in the header
    and a stream cut off mid-way in a row; both are now refused before anything is streamed."""
    for content, line in (
        ("address," + "x" * 200_000 + "\n天津市\n", 1),
        ("address,note\n天津市," + "y" * 200_000 + "\n", 2),
    ):
        response = client.post(URL, files=upload(content.encode()), headers=viewer)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "InvalidCSV"
        assert response.json()["details"]["line"] == line


def test_the_cli_geocodes_a_file(tmp_path, stored: list[Stored]) -> None:
    """`geo addresses geocode FILE --out OUT`, run as a user would."""
    import os
    import subprocess
    import sys

    source = tmp_path / "in.csv"
    source.write_bytes(
        csv_of([["id", "地址"], *[[str(i), a.full_address] for i, a in enumerate(stored)]])
    )
    target = tmp_path / "out.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from geo.cli import main; main()",
            "addresses",
            "geocode",
            str(source),
            "--out",
            str(target),
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{len(stored)}/{len(stored)}" in result.stderr  # the progress bar
    out = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [int(r["address_id"]) for r in out] == [a.id for a in stored]
    bad = subprocess.run(
        [
            sys.executable,
            "-c",
            "from geo.cli import main; main()",
            "addresses",
            "geocode",
            str(source),
            "--column",
            "nope",
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_a_dead_worker_process_costs_one_batch_not_the_service(stored: list[Stored]) -> None:
    import os
    import signal
    from concurrent.futures.process import BrokenProcessPool

    items = [batch.JsonItem(a.full_address, {}) for a in stored] * (batch.CHUNK // 4)
    assert len(list(batch.stream_json(items))) > 1  # several chunks: the worker processes
    pool = batch._workers.pool()
    victim = next(iter(pool._processes))  # a real worker process, to kill
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):
        list(batch.stream_json(items))
    lines = b"".join(batch.stream_json(items)).splitlines()
    assert len(lines) == len(items)
    assert orjson.loads(lines[-1])["address_id"] == stored[-1].id
