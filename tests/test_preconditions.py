"""One rule for conditional requests (geo.preconditions): If-Match on writes, If-None-Match on
reads, for features, addresses (tests/test_address_lifecycle.py) and tiles alike."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from geo.errors import ApiError
from geo.preconditions import check_if_match, not_modified
from tests.layers_helpers import make_points_layer


@pytest.mark.parametrize(
    ("header", "required"),
    [(None, False), ("", False), ('"3"', True), ('W/"3"', True), ('"1", "3"', True), ("*", True)],
)
def test_if_match_that_passes(header: str | None, required: bool) -> None:
    check_if_match(header, 3, required=required, what="feature 1")


@pytest.mark.parametrize(
    ("header", "required", "status", "code"),
    [
        (None, True, 428, "PreconditionRequired"),
        ('"2"', False, 412, "PreconditionFailed"),
        ('"2", W/"4"', True, 412, "PreconditionFailed"),
        ("3", True, 400, "InvalidParameterValue"),  # not an entity tag: quotes are its syntax
        ('"3', False, 400, "InvalidParameterValue"),
        ('"3" "4"', False, 400, "InvalidParameterValue"),
    ],
)
def test_if_match_that_fails(header: str | None, required: bool, status: int, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_if_match(header, 3, required=required, what="feature 1")
    assert (caught.value.status, caught.value.code) == (status, code)
    if status in (412, 428):
        assert caught.value.details == {"version": 3}
        assert caught.value.headers == {"ETag": '"3"'}


def _request(if_none_match: str) -> Request:
    return Request({"type": "http", "headers": [(b"if-none-match", if_none_match.encode())]})


@pytest.mark.parametrize(
    ("header", "expected"),
    [('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True), ('"x"', False)],
)
def test_if_none_match(header: str, expected: bool) -> None:
    assert not_modified(_request(header), '"abc"') is expected


def test_features_answer_if_none_match_and_refuse_malformed_if_match(
    client: TestClient, make_department
) -> None:
    dept = make_department()
    lid = make_points_layer(client, dept.editor, 2, access="public")
    fid = client.get(f"/collections/{lid}/items").json()["features"][0]["id"]
    url = f"/collections/{lid}/items/{fid}"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["etag"] == '"1"'

    cached = client.get(url, headers={"If-None-Match": '"1"'})
    assert cached.status_code == 304 and cached.headers["etag"] == '"1"' and not cached.content
    assert client.get(url, headers={"If-None-Match": '"0"'}).status_code == 200
    malformed = client.get(url, headers={"If-None-Match": "1"})
    assert malformed.status_code == 400 and malformed.json()["code"] == "InvalidParameterValue"

    patch = {"properties": {"pop": 7}}
    refused = client.patch(url, json=patch, headers={**dept.editor, "If-Match": "1"})
    assert refused.status_code == 400, refused.text
    assert client.get(url).json()["properties"]["pop"] != 7  # nothing was written
    ok = client.patch(url, json=patch, headers={**dept.editor, "If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    # The client's copy is stale now: a 200 with the new version, not a 304.
    assert client.get(url, headers={"If-None-Match": '"1"'}).status_code == 200


def test_tiles_refuse_a_malformed_if_none_match(client: TestClient) -> None:
    response = client.get("/tiles/districts/10/843/388.mvt", headers={"If-None-Match": "abc"})
    assert response.status_code == 400 and response.json()["code"] == "InvalidParameterValue"
