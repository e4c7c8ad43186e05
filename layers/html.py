"""Plain server-rendered HTML for browsers that open a collection or its items: no scripts,
every value escaped."""

from __future__ import annotations

from html import escape
from typing import Any

import orjson

_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:80em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
    "text-align:left;vertical-align:top}"
)


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='zh'><head><meta charset='utf-8'><title>{escape(title)}"
        f"</title><style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _links(links: list[dict[str, Any]]) -> str:
    items = "".join(
        f"<li><a href='{escape(link['href'])}'>{escape(link.get('title') or link['rel'])}</a>"
        f" ({escape(link.get('type', ''))})</li>"
        for link in links
    )
    return f"<ul>{items}</ul>"


def collections(doc: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><a href='{escape(c['links'][0]['href'])}?f=html'>{escape(c['id'])}</a></td>"
        f"<td>{escape(c['title'])}</td><td>{escape(c.get('geometryType', ''))}</td>"
        f"<td>{escape(c.get('access', 'public'))}</td></tr>"
        for c in doc["collections"]
    )
    table = (
        f"<table><tr><th>id</th><th>title</th><th>geometry</th><th>access</th></tr>{rows}</table>"
    )
    return page("Collections", table)


def collection(doc: dict[str, Any]) -> str:
    props = "".join(
        f"<tr><td>{escape(p['name'])}</td><td>{escape(p['type'])}</td></tr>"
        for p in doc.get("properties", [])
    )
    body = (
        f"<p>{escape(doc.get('description') or '')}</p>"
        f"<p>geometry: {escape(doc['geometryType'])}</p>"
        f"<table><tr><th>property</th><th>type</th></tr>{props}</table>" + _links(doc["links"])
    )
    return page(doc["title"], body)


def items(title: str, features: list[bytes], links: list[dict[str, Any]], matched: int) -> str:
    parsed = [orjson.loads(f) for f in features]
    names: list[str] = []
    for f in parsed:
        names.extend(n for n in (f.get("properties") or {}) if n not in names)
    head = "".join(f"<th>{escape(n)}</th>" for n in ["id", *names, "geometry"])
    rows = "".join(
        "<tr>"
        + f"<td>{escape(str(f.get('id')))}</td>"
        + "".join(f"<td>{escape(_text((f.get('properties') or {}).get(n)))}</td>" for n in names)
        + f"<td>{escape((f.get('geometry') or {}).get('type', ''))}</td></tr>"
        for f in parsed
    )
    body = f"<p>{len(parsed)} of {matched} features</p><table><tr>{head}</tr>{rows}</table>"
    return page(title, body + _links(links))


def feature(title: str, feature_json: bytes) -> str:
    f = orjson.loads(feature_json)
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(_text(v))}</td></tr>"
        for k, v in (f.get("properties") or {}).items()
    )
    geometry = escape(orjson.dumps(f.get("geometry")).decode()[:2000])
    return page(f"{title} / {f.get('id')}", f"<table>{rows}</table><pre>{geometry}</pre>")


def _text(value: Any) -> str:
    return "" if value is None else str(value)
