"""The coordinate system registry, the GCJ-02/BD-09 transforms and the one transform entry point.

PROJ is the reference for everything it knows; the web offsets are checked against published
values and against their own inverses.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import CRS, Geod, Transformer

from geo import crs, gcj02
from geo.errors import ApiError

GEOD = Geod(ellps="WGS84")
TIANJIN_EYE = (117.18026, 39.15336)
PROJECTED = ["EPSG:4548", "EPSG:4527", "EPSG:3857", "EPSG:2436", "EPSG:2384"]


def distance_m(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def china_points(n: int = 10_000, seed: int = 20240501) -> tuple[np.ndarray, np.ndarray]:
    """Random points inside the GCJ-02 box, kept 0.1 degree off its edges (discontinuous there)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(72.2, 137.6, n), rng.uniform(1.0, 55.6, n)


def api_error(fn: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args)
    assert info.value.status == 400
    return info.value


# --- registry -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("EPSG:4490", "EPSG:4490"),
        ("4490", "EPSG:4490"),
        ("epsg:4490", "EPSG:4490"),
        ("http://www.opengis.net/def/crs/EPSG/0/4490", "EPSG:4490"),
        ("urn:ogc:def:crs:EPSG::4490", "EPSG:4490"),
        ("URN:OGC:DEF:CRS:EPSG::4548", "EPSG:4548"),
        (" 4527 ", "EPSG:4527"),
        ("CRS84", "CRS84"),
        ("crs84", "CRS84"),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "CRS84"),
        ("EPSG:4326", "EPSG:4326"),
        ("3857", "EPSG:3857"),
        ("2436", "EPSG:2436"),
        ("EPSG:2384", "EPSG:2384"),
        ("GCJ02", "GCJ02"),
        ("gcj02", "GCJ02"),
        ("GCJ-02", "GCJ02"),
        ("urn:tianjin-geo:crs:GCJ02", "GCJ02"),
        ("BD09", "BD09"),
        ("BD-09", "BD09"),
        ("bd-09", "BD09"),
    ],
)
def test_resolve_accepts_the_usual_spellings(spelling: str, expected: str) -> None:
    assert crs.resolve(spelling).id == expected


@pytest.mark.parametrize("spelling", ["EPSG:9999", "WGS84", "", "EPSG:", "4490x", "GCJ"])
def test_unknown_crs_is_a_400_naming_the_supported_ones(spelling: str) -> None:
    error = api_error(crs.resolve, spelling)
    assert error.code == "UnknownCRS"
    assert repr(spelling) in error.message
    assert "EPSG:4490" in error.message and "GCJ02" in error.message
    assert error.details["crs"] == spelling


def test_list_crs_describes_every_system() -> None:
    listed = crs.list_crs()
    ids = [entry["id"] for entry in listed]
    assert ids == [
        "EPSG:4490",
        "EPSG:4326",
        "CRS84",
        "EPSG:3857",
        "EPSG:4548",
        "EPSG:4527",
        "EPSG:2436",
        "EPSG:2384",
        "GCJ02",
        "BD09",
    ]
    assert len({entry["uri"] for entry in listed}) == len(listed)
    by_id = {entry["id"]: entry for entry in listed}
    assert by_id["CRS84"]["uri"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert by_id["EPSG:4548"]["name"] == "CGCS2000 / 3-degree Gauss-Kruger CM 117E"
    assert by_id["GCJ02"]["projBacked"] is False and by_id["EPSG:2436"]["projBacked"] is True
    for entry in listed:
        assert set(entry) == {"id", "name", "uri", "axisOrder", "projBacked", "aliases"}
        assert crs.resolve(entry["uri"]).id == entry["id"]


@pytest.mark.parametrize(
    ("crs_id", "yx"),
    [
        ("EPSG:4490", True),
        ("EPSG:4326", True),
        ("CRS84", False),
        ("EPSG:3857", False),
        ("EPSG:4548", True),
        ("EPSG:4527", True),
        ("EPSG:2436", True),
        ("EPSG:2384", True),
        ("GCJ02", False),
        ("BD09", False),
    ],
)
def test_official_axis_order(crs_id: str, yx: bool) -> None:
    assert crs.is_yx_order(crs_id) is yx
    info = crs.resolve(crs_id)
    if info.proj:
        first = CRS.from_user_input(info.proj).axis_info[0].direction
        assert (first == "north") is yx


# --- PROJ-backed systems ------------------------------------------------------------------------


@pytest.mark.parametrize("target", PROJECTED)
def test_known_point_matches_pyproj(target: str) -> None:
    expected = Transformer.from_crs("EPSG:4490", target, always_xy=True).transform(*TIANJIN_EYE)
    x, y = crs.transform_xy(*TIANJIN_EYE, "EPSG:4490", target)
    assert float(x) == pytest.approx(expected[0], abs=1e-6)
    assert float(y) == pytest.approx(expected[1], abs=1e-6)
    back_x, back_y = crs.transform_xy(x, y, target, "EPSG:4490")
    assert distance_m(*TIANJIN_EYE, back_x, back_y) < 1e-3


def test_known_point_absolute_values() -> None:
    """Sanity beyond agreeing with PROJ: the numbers a Tianjin surveyor would recognise."""
    e, n = crs.transform_xy(*TIANJIN_EYE, "EPSG:4490", "EPSG:4548")
    assert 515_000 < e < 516_000 and 4_335_000 < n < 4_336_000
    ze, zn = crs.transform_xy(*TIANJIN_EYE, "EPSG:4490", "EPSG:4527")
    assert ze == pytest.approx(39_000_000 + e, abs=1e-3) and zn == pytest.approx(n, abs=1e-3)
    me, mn = crs.transform_xy(*TIANJIN_EYE, "EPSG:4490", "EPSG:3857")
    assert me == pytest.approx(13_044_446.87, abs=0.05) and mn == pytest.approx(4_743_663, abs=1)
    # Beijing 1954 and Xian 1980 grids differ from CGCS2000 by the ellipsoid (PROJ has no
    # datum shift for them), tens of metres at most.
    for other in ("EPSG:2436", "EPSG:2384"):
        oe, on = crs.transform_xy(*TIANJIN_EYE, "EPSG:4490", other)
        assert abs(oe - e) < 100 and abs(on - n) < 100


def test_cgcs2000_and_wgs84_are_the_same_numbers() -> None:
    lon, lat = china_points(100)
    for target in ("EPSG:4326", "CRS84"):
        x, y = crs.transform_xy(lon, lat, "EPSG:4490", target)
        np.testing.assert_array_equal(x, lon)
        np.testing.assert_array_equal(y, lat)


def test_untransformable_position_is_a_400() -> None:
    error = api_error(crs.transform, [[117.0, 39.0], [117.0, 100.0]], "EPSG:4326", "EPSG:3857")
    assert error.code == "TransformFailed"
    assert error.details["index"] == 1
    assert "EPSG:3857" in error.message


# --- GCJ-02 and BD-09 ---------------------------------------------------------------------------


def test_gcj02_published_reference_values() -> None:
    """Values printed by the widely used coordtransform library (wandergis) for 116.404, 39.915."""
    lon, lat = gcj02.wgs84_to_gcj02(116.404, 39.915)
    assert lon == pytest.approx(116.41024449916938, abs=1e-12)
    assert lat == pytest.approx(39.91640428150164, abs=1e-12)
    lon, lat = gcj02.gcj02_to_bd09(116.404, 39.915)
    assert lon == pytest.approx(116.41036949371029, abs=1e-12)
    assert lat == pytest.approx(39.92133699351021, abs=1e-12)


def test_inverses_agree_with_the_published_approximations() -> None:
    """That library's inverses are one-step approximations; ours refine them by centimetres."""
    lon, lat = gcj02.gcj02_to_wgs84(116.404, 39.915)
    assert distance_m(lon, lat, 116.39775550083061, 39.91359571849836) < 0.5
    lon, lat = gcj02.bd09_to_gcj02(116.404, 39.915)
    assert distance_m(lon, lat, 116.39762729119315, 39.90865673957631) < 0.5


def test_gcj02_offset_in_tianjin_is_hundreds_of_metres() -> None:
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(116.7, 118.1, 1000), rng.uniform(38.5, 40.3, 1000)
    gx, gy = gcj02.wgs84_to_gcj02(lon, lat)
    offsets = distance_m(lon, lat, gx, gy)
    assert offsets.min() > 100 and offsets.max() < 700
    # Mars coordinates sit to the east-north-east in Tianjin.
    assert np.all(gx > lon) and np.all(gy > lat)
    bx, by = gcj02.gcj02_to_bd09(gx, gy)
    assert distance_m(gx, gy, bx, by).min() > 100 and distance_m(gx, gy, bx, by).max() < 1500


def test_gcj02_round_trip_under_a_millimetre() -> None:
    lon, lat = china_points()
    gx, gy = gcj02.wgs84_to_gcj02(lon, lat)
    assert distance_m(lon, lat, gx, gy).min() > 1  # the points really were moved
    wx, wy = gcj02.gcj02_to_wgs84(gx, gy)
    assert distance_m(lon, lat, wx, wy).max() < 1e-3


def test_bd09_round_trips_under_a_millimetre() -> None:
    lon, lat = china_points(seed=11)
    gx, gy = gcj02.bd09_to_gcj02(*gcj02.gcj02_to_bd09(lon, lat))
    assert distance_m(lon, lat, gx, gy).max() < 1e-3
    wx, wy = gcj02.bd09_to_wgs84(*gcj02.wgs84_to_bd09(lon, lat))
    assert distance_m(lon, lat, wx, wy).max() < 1e-3


@pytest.mark.parametrize("web", ["GCJ02", "BD09"])
def test_round_trip_through_the_registry(web: str) -> None:
    lon, lat = china_points(seed=3)
    x, y = crs.transform_xy(lon, lat, "EPSG:4490", web)
    bx, by = crs.transform_xy(x, y, web, "EPSG:4490")
    assert distance_m(lon, lat, bx, by).max() < 1e-3
    # From a web system straight into a projected one equals the detour through CGCS2000.
    e, n = crs.transform_xy(x[:50], y[:50], web, "EPSG:4548")
    ee, en = crs.transform_xy(bx[:50], by[:50], "EPSG:4490", "EPSG:4548")
    np.testing.assert_allclose(e, ee, atol=1e-6)
    np.testing.assert_allclose(n, en, atol=1e-6)


@pytest.mark.parametrize(
    "point",
    [(2.3522, 48.8566), (-74.006, 40.7128), (139.6917, 35.6895), (100.0, 0.5), (72.0, 39.0)],
)
def test_gcj02_leaves_points_outside_china_unchanged(point: tuple[float, float]) -> None:
    assert not gcj02.in_china(*point)
    assert gcj02.wgs84_to_gcj02(*point) == point
    assert gcj02.gcj02_to_wgs84(*point) == point
    x, y = crs.transform_xy(*point, "CRS84", "GCJ02")
    assert (float(x), float(y)) == point


def test_gcj02_accepts_scalars_and_arrays_of_any_shape() -> None:
    lon, lat = gcj02.wgs84_to_gcj02(117.0, 39.0)
    assert isinstance(lon, float) and isinstance(lat, float)
    grid = np.array([[117.0, 117.1], [117.2, 117.3]])
    glon, glat = gcj02.wgs84_to_gcj02(grid, 39.0)
    assert glon.shape == glat.shape == (2, 2)
    assert glon[0, 0] == lon and glat[0, 0] == lat
    wlon, _ = gcj02.gcj02_to_wgs84(glon, glat)
    assert wlon.shape == (2, 2)


def test_gcj02_inverse_passes_nan_through_without_spinning() -> None:
    lon, lat = gcj02.gcj02_to_wgs84(np.array([117.0, math.nan]), np.array([39.0, 39.0]))
    assert math.isfinite(lon[0]) and math.isnan(lon[1])
    lon, lat = gcj02.bd09_to_wgs84(math.nan, math.nan)
    assert math.isnan(lon) and math.isnan(lat)


# --- shapes -------------------------------------------------------------------------------------


def test_coordinate_arrays_keep_shape_and_z() -> None:
    coords = np.array([[117.0, 39.0, 5.0], [117.5, 39.5, 6.0]])
    out = crs.transform(coords, "CRS84", "EPSG:4548")
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out[:, 2], [5.0, 6.0])
    x, y = crs.transform_xy(coords[:, 0], coords[:, 1], "CRS84", "EPSG:4548")
    np.testing.assert_array_equal(out[:, 0], x)
    np.testing.assert_array_equal(out[:, 1], y)
    pair = crs.transform([117.0, 39.0], "CRS84", "EPSG:4548")
    assert pair.shape == (2,) and pair[0] == x[0]


@pytest.mark.parametrize("bad", [[1.0, 2.0, 3.0, 4.0], [["a", "b"]], 5.0, [[1.0], [2.0]]])
def test_bad_coordinate_arrays_are_a_400(bad: Any) -> None:
    assert api_error(crs.transform, bad, "CRS84", "GCJ02").code == "InvalidCoordinates"


def test_shapely_geometries_keep_their_structure() -> None:
    polygon = shapely.Polygon(
        [(117.0, 39.0), (117.2, 39.0), (117.2, 39.2), (117.0, 39.2)],
        holes=[[(117.05, 39.05), (117.1, 39.05), (117.1, 39.1)]],
    )
    collection = shapely.GeometryCollection(
        [shapely.Point(117.1, 39.1, 7.0), shapely.MultiLineString([[(117, 39), (118, 40)]])]
    )
    for geometry in (polygon, collection, shapely.MultiPolygon([polygon, polygon])):
        out = crs.transform(geometry, "EPSG:4490", "EPSG:4548")
        assert out.geom_type == geometry.geom_type
        assert shapely.get_num_coordinates(out) == shapely.get_num_coordinates(geometry)
        x, y = crs.transform_xy(*shapely.get_coordinates(geometry).T, "EPSG:4490", "EPSG:4548")
        np.testing.assert_allclose(shapely.get_coordinates(out), np.column_stack([x, y]))
    point = crs.transform(collection, "EPSG:4490", "GCJ02").geoms[0]
    assert point.has_z and point.z == 7.0


def test_array_of_geometries_in_one_call() -> None:
    geometries = np.array([shapely.Point(117, 39), shapely.LineString([(117, 39), (117.1, 39.1)])])
    out = crs.transform(geometries, "CRS84", "BD09")
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    assert out[0].equals_exact(crs.transform(geometries[0], "CRS84", "BD09"), 1e-12)


def test_swap_xy() -> None:
    assert crs.swap_xy(shapely.Point(1, 2, 3)).equals_exact(shapely.Point(2, 1, 3), 0)
    np.testing.assert_array_equal(crs.swap_xy(np.array([[1.0, 2.0]])), [[2.0, 1.0]])
    swapped = crs.swap_xy({"type": "LineString", "coordinates": [[1, 2], [3, 4, 5]]})
    assert swapped["coordinates"] == [[2.0, 1.0], [4.0, 3.0, 5]]


# --- GeoJSON ------------------------------------------------------------------------------------


def feature_collection() -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "bbox": [117.0, 39.0, 117.2, 39.2],
        "name": "hospitals",
        "features": [
            {
                "type": "Feature",
                "id": "h1",
                "properties": {"name": "天津医院", "beds": 800, "tags": ["a"]},
                "geometry": {"type": "Point", "coordinates": [117.18026, 39.15336, 12.5]},
            },
            {"type": "Feature", "properties": None, "geometry": None},
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "GeometryCollection",
                    "geometries": [
                        {"type": "MultiPoint", "coordinates": [[117.0, 39.0], [117.1, 39.1]]},
                        {
                            "type": "MultiPolygon",
                            "coordinates": [
                                [[[117, 39], [117.1, 39], [117.1, 39.1], [117, 39]]],
                                [[[117.2, 39.2], [117.3, 39.2], [117.3, 39.3], [117.2, 39.2]]],
                            ],
                        },
                    ],
                },
            },
        ],
    }


def test_feature_collection_keeps_structure_and_properties() -> None:
    source = feature_collection()
    pristine = copy.deepcopy(source)
    out = crs.transform(source, "CRS84", "EPSG:4548")
    assert source == pristine  # input untouched
    assert "bbox" not in out  # would describe the old CRS
    assert out["name"] == "hospitals" and len(out["features"]) == 3
    first = out["features"][0]
    assert first["id"] == "h1" and first["properties"] == pristine["features"][0]["properties"]
    e, n, z = first["geometry"]["coordinates"]
    assert 515_000 < e < 516_000 and 4_335_000 < n < 4_336_000 and z == 12.5
    assert out["features"][1] == pristine["features"][1]
    members = out["features"][2]["geometry"]["geometries"]
    assert [g["type"] for g in members] == ["MultiPoint", "MultiPolygon"]
    assert len(members[1]["coordinates"][1][0]) == 4
    back = crs.transform(out, "EPSG:4548", "CRS84")
    lon, lat, _ = back["features"][0]["geometry"]["coordinates"]
    assert distance_m(lon, lat, *TIANJIN_EYE) < 1e-3


def test_geometry_and_feature_roots() -> None:
    geometry = {
        "type": "Polygon",
        "coordinates": [[[117, 39], [117.1, 39], [117.1, 39.1], [117, 39]]],
    }
    out = crs.transform(geometry, "CRS84", "GCJ02")
    assert out["type"] == "Polygon" and len(out["coordinates"][0]) == 4
    feature = {"type": "Feature", "properties": {"a": 1}, "geometry": geometry}
    assert crs.transform(feature, "CRS84", "GCJ02")["geometry"] == out
    assert crs.transform_geojson(feature, "CRS84", "GCJ02")["geometry"] == out


def test_empty_collection() -> None:
    empty = {"type": "FeatureCollection", "features": []}
    assert crs.transform(empty, "CRS84", "EPSG:3857") == empty


def _nested_collections(depth: int) -> dict[str, Any]:
    geometry: dict[str, Any] = {"type": "Point", "coordinates": [117, 39]}
    for _ in range(depth):
        geometry = {"type": "GeometryCollection", "geometries": [geometry]}
    return geometry


def _fc_with(geometry: Any) -> dict[str, Any]:
    features = [{"type": "Feature", "properties": {}, "geometry": None} for _ in range(4)]
    features.append({"type": "Feature", "properties": {}, "geometry": geometry})
    return {"type": "FeatureCollection", "features": features}


@pytest.mark.parametrize(
    ("document", "where", "problem"),
    [
        ([1, 2], "(root)", "got array"),
        ("Point", "(root)", "got string"),
        ({"coordinates": [1, 2]}, "type", "missing"),
        ({"type": "Pointe", "coordinates": [1, 2]}, "type", "'Pointe'"),
        ({"type": 7}, "type", "7"),
        ({"type": "Point"}, "coordinates", "missing"),
        ({"type": "Point", "coordinates": "117,39"}, "coordinates", "got string"),
        ({"type": "Point", "coordinates": [117]}, "coordinates", "2 or 3 numbers"),
        ({"type": "Point", "coordinates": [1, 2, 3, 4]}, "coordinates", "an array of 4"),
        ({"type": "Point", "coordinates": ["117", 39]}, "coordinates[0]", "not a number"),
        ({"type": "Point", "coordinates": [117, None]}, "coordinates[1]", "not a number"),
        ({"type": "Point", "coordinates": [True, 39]}, "coordinates[0]", "not a number"),
        ({"type": "Point", "coordinates": [math.nan, 39]}, "coordinates[0]", "not a finite"),
        ({"type": "Point", "coordinates": [117, math.inf]}, "coordinates[1]", "not a finite"),
        ({"type": "Point", "coordinates": [10**400, 39]}, "coordinates[0]", "not a finite"),
        ({"type": "LineString", "coordinates": [117, 39]}, "coordinates[0]", "got number"),
        ({"type": "LineString", "coordinates": {"a": 1}}, "coordinates", "got object"),
        (
            {"type": "Polygon", "coordinates": [[117, 39], [118, 40]]},
            "coordinates[0][0]",
            "Polygon coordinates nest arrays 3 deep",
        ),
        (
            {"type": "MultiPolygon", "coordinates": [[[[117, 39], [118, "x"]]]]},
            "coordinates[0][0][1][1]",
            "not a number",
        ),
        ({"type": "GeometryCollection"}, "geometries", "missing"),
        ({"type": "GeometryCollection", "geometries": {}}, "geometries", "expected an array"),
        (
            {"type": "GeometryCollection", "geometries": [{"type": "Feature"}]},
            "geometries[0].type",
            "'Feature'",
        ),
        (_nested_collections(20), ".".join(["geometries[0]"] * 8), "nested deeper"),
        ({"type": "Feature", "properties": {}}, "geometry", "missing"),
        ({"type": "Feature", "geometry": [117, 39]}, "geometry", "got array"),
        ({"type": "FeatureCollection"}, "features", "missing"),
        ({"type": "FeatureCollection", "features": {"type": "Feature"}}, "features", "got object"),
        (
            {"type": "FeatureCollection", "features": [{"type": "Point", "coordinates": [1, 2]}]},
            "features[0].type",
            "'Point'",
        ),
        ({"type": "FeatureCollection", "features": [None]}, "features[0]", "got null"),
        (
            _fc_with({"type": "Polygon", "coordinates": [[[117, 39], [118, 40], [118, "n"]]]}),
            "features[4].geometry.coordinates[0][2][1]",
            "not a number",
        ),
        (
            _fc_with({"type": "LineString", "coordinates": [[117, 39], [118]]}),
            "features[4].geometry.coordinates[1]",
            "2 or 3 numbers",
        ),
    ],
)
def test_malformed_geojson_names_the_problem(document: Any, where: str, problem: str) -> None:
    error = api_error(crs.transform_geojson, document, "CRS84", "EPSG:4490")
    assert error.code == "InvalidGeoJSON"
    assert error.details["path"] == where
    assert error.message.startswith(f"{where}: ")
    assert problem in error.message


def test_malformed_path_is_exact() -> None:
    document = _fc_with({"type": "Polygon", "coordinates": [[[117, 39], [118, 40], [118, "n"]]]})
    error = api_error(crs.transform, document, "CRS84", "EPSG:3857")
    assert error.details["path"] == "features[4].geometry.coordinates[0][2][1]"
    assert (
        error.message == "features[4].geometry.coordinates[0][2][1]: not a number (got string 'n')"
    )


def test_unknown_crs_wins_over_a_bad_body() -> None:
    assert api_error(crs.transform_geojson, [], "EPSG:1", "CRS84").code == "UnknownCRS"
