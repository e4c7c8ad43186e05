"""Each package names only its own tables (issue 10).

A package's tables are the ``__tablename__``s of its SQLAlchemy models, the tables (and views)
its raw DDL creates, and the schemas it creates. Another package naming one of them in SQL
(``FROM addresses``, ``public.admin_areas``, ``layerdata.l_x``) or importing its models would
depend on its columns and filters behind its back; it should use what the owner offers instead
(a registered collection, geo.versions, a function). Prose is not SQL: "addresses" in a
docstring or a URL is fine, so names count only in SQL contexts (after FROM, JOIN, INTO,
UPDATE, TABLE..., written in capitals as this code base writes SQL) or schema-qualified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from geo import plugins
from geo.sources import LayerSource

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("geo", "addressbook", "layers", "tiles")

_NAME = r"""["']?(\{?\w+\}?)["']?"""
TABLE_DEFINITIONS = (
    re.compile(r"""__tablename__\s*=\s*["'](\w+)["']"""),
    re.compile(r"""\bTable\(\s*["'](\w+)["']"""),
    re.compile(
        r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:UNLOGGED|TEMP|TEMPORARY|MATERIALIZED)\s+)?"
        r"(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:\w+\.)?(?!AS\b)" + _NAME
    ),
)
SCHEMA_DEFINITION = re.compile(r"\bCREATE\s+SCHEMA\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME)
SQL_CONTEXT = (
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|TRUNCATE|ANALYZE|VACUUM|REFERENCES|ON)\s+(?:ONLY\s+)?"
    r'(?:"?\w+"?\.)?"?{name}"?(?![\w.])'
)
QUALIFIED = r'\b"?public"?\."?{name}"?(?![\w.])'
IN_SCHEMA = r'\b"?{name}"?\."?\w'


@dataclass(frozen=True)
class Finding:
    package: str
    path: str
    line: int
    owner: str
    name: str
    text: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.package} names {self.owner}'s {self.name!r}: "
            f"{self.text.strip()}"
        )


def _sources(package: str) -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
        for p in sorted((ROOT / package).rglob("*.py"))
    }


def _resolve(name: str, text: str) -> str | None:
    """A literal name, or ``{CONSTANT}`` looked up as a module-level string constant of the
    same file (``CREATE SCHEMA IF NOT EXISTS {SCHEMA}``); None when it is computed."""
    if not name.startswith("{"):
        return name if not name.endswith("}") else None
    constant = re.search(rf"""^{re.escape(name.strip("{}"))}\s*=\s*["'](\w+)["']""", text, re.M)
    return constant.group(1) if constant else None


def owned(files: dict[str, str]) -> tuple[set[str], set[str]]:
    """The tables and the schemas these files create."""
    tables: set[str] = set()
    schemas: set[str] = set()
    for text in files.values():
        for pattern in TABLE_DEFINITIONS:
            tables.update(n for m in pattern.finditer(text) if (n := _resolve(m.group(1), text)))
        schemas.update(
            n for m in SCHEMA_DEFINITION.finditer(text) if (n := _resolve(m.group(1), text))
        )
    return tables, schemas


def violations(sources: dict[str, dict[str, str]]) -> list[Finding]:
    """Every place a package names a table or schema only another package creates, or imports
    another package's models."""
    ownership = {package: owned(files) for package, files in sources.items()}
    found: list[Finding] = []
    for package, files in sources.items():
        mine_tables, mine_schemas = ownership[package]
        checks: list[tuple[str, str, re.Pattern[str]]] = []
        for owner, (tables, schemas) in ownership.items():
            if owner == package:
                continue
            for name in sorted(tables - mine_tables):
                quoted = re.escape(name)
                checks.append((owner, name, re.compile(SQL_CONTEXT.format(name=quoted))))
                checks.append((owner, name, re.compile(QUALIFIED.format(name=quoted))))
            for name in sorted(schemas - mine_schemas):
                checks.append((owner, name, re.compile(IN_SCHEMA.format(name=re.escape(name)))))
            models = rf"^\s*(?:from\s+{owner}\.models\s+import|import\s+{owner}\.models)\b"
            checks.append((owner, f"{owner}.models", re.compile(models, re.M)))
        for path, text in files.items():
            lines = text.splitlines()
            for owner, name, pattern in checks:
                for match in pattern.finditer(text):
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(Finding(package, path, line, owner, name, lines[line - 1]))
    return found


@pytest.fixture(scope="module")
def package_sources() -> dict[str, dict[str, str]]:
    return {package: _sources(package) for package in PACKAGES}


def test_the_scan_sees_each_package_tables(package_sources: dict[str, dict[str, str]]) -> None:
    """Without this, an empty scan would pass the real test below."""
    tables = {package: owned(files)[0] for package, files in package_sources.items()}
    assert {"addresses", "admin_areas", "grids"} <= tables["addressbook"]
    assert {"departments", "api_keys", "audit_log", "data_versions"} <= tables["geo"]
    assert "layers" in tables["layers"]
    assert "layerdata" in owned(package_sources["layers"])[1]


def test_no_package_names_another_package_tables(
    package_sources: dict[str, dict[str, str]],
) -> None:
    found = violations(package_sources)
    assert not found, "\n".join(map(str, found))


@pytest.mark.parametrize(
    "code",
    [
        'table="public.admin_areas"',
        "SELECT name, version FROM data_versions WHERE name = ANY(%s)",
        "UPDATE addresses SET road = :road",
        'SELECT * FROM "public"."grids" g JOIN layers l ON true',
        "INSERT INTO layerdata.l_x (geom) VALUES (NULL)",
        "from addressbook.models import Address",
    ],
)
def test_the_scan_catches_sql_naming_another_package_table(code: str) -> None:
    sources = {
        "owner": {"owner/models.py": '__tablename__ = "admin_areas"\n__tablename__ = "grids"\n'},
        "core": {"core/versions.py": "CREATE TABLE data_versions (name text)\n"},
        "layers": {"layers/storage.py": 'SCHEMA = "layerdata"\nCREATE SCHEMA {SCHEMA}\n'},
        "addressbook": {"addressbook/models.py": '__tablename__ = "addresses"'},
        "reader": {"reader/x.py": code},
    }
    assert {f.package for f in violations(sources)} == {"reader"}


@pytest.mark.parametrize(
    "code",
    [
        '"""Reads the address library\'s addresses, grids and admin areas."""',
        'version_key="addresses"',
        'url = "/addresses/geocode"',
        "# the admin_areas of a district, from addresses",
        "SELECT * FROM reader_own",
    ],
)
def test_prose_ids_and_urls_are_not_sql(code: str) -> None:
    sources = {
        "owner": {"owner/models.py": '__tablename__ = "addresses"\n__tablename__ = "admin_areas"'},
        "reader": {"reader/x.py": code + '\n__tablename__ = "reader_own"'},
    }
    assert violations(sources) == []


def test_the_address_library_registers_its_collections() -> None:
    registered = plugins.system_collections()
    assert list(registered) == [
        "addresses",
        "districts",
        "subdistricts",
        "communities",
        "grids",
        "places",
    ]
    assert "level = 'district'" in (registered["districts"].where or "")
    # Personal data never becomes a collection property (README: grids).
    assert not {"staff_name", "staff_phone"} & set(registered["grids"].properties)


def test_two_packages_claiming_one_collection_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def offered() -> list[LayerSource]:
        return [LayerSource(id="roads", title="roads", table="t", geometry_type="LineString")]

    claims = (
        plugins.Plugin(name="one", collections=offered),
        plugins.Plugin(name="two", collections=offered),
    )
    monkeypatch.setattr(plugins, "load_plugins", lambda: claims)
    plugins.system_collections.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="'roads' is registered twice"):
            plugins.system_collections()
    finally:
        monkeypatch.undo()
        plugins.system_collections.cache_clear()
