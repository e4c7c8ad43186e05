"""pyproject.toml declares what the code imports.

numpy and pandas were imported by the address library for months while only geopandas pulled
them in; dropping geopandas would have broken a fresh install. So every third-party top-level
module the packages import must belong to a declared distribution: the product's packages to
`dependencies`, the benchmarks to those plus the `dev` extra, the analysts' client (geo/client,
which the service never imports) to those plus the `client` extra. An extra of a declared
requirement (`psycopg[pool]`) declares what that extra brings (psycopg_pool).
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("geo", "layers", "tiles", "addressbook", "console")
BENCH = ("bench",)
CLIENT = "geo/client"


def imported_modules(packages: Iterable[str]) -> dict[str, set[str]]:
    """Top-level modules imported anywhere in `packages` (absolute imports), with the files
    importing each; our own packages and the standard library left out. The client's folder
    counts only when named itself."""
    found: dict[str, set[str]] = {}
    for package in packages:
        for path in (REPO / package).rglob("*.py"):
            if package != CLIENT and path.is_relative_to(REPO / CLIENT):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top not in sys.stdlib_module_names and top not in (*PRODUCT, *BENCH):
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def declared(requirements: Iterable[str]) -> set[str]:
    """Canonical names of the requirements and of what their extras require."""
    names: set[str] = set()
    for line in requirements:
        requirement = Requirement(line)
        names.add(canonicalize_name(requirement.name))
        try:
            brought = requires(requirement.name) or []
        except PackageNotFoundError:
            continue
        for extra in requirement.extras:
            for line_of_extra in brought:
                sub = Requirement(line_of_extra)
                if sub.marker is not None and sub.marker.evaluate({"extra": extra}):
                    names.add(canonicalize_name(sub.name))
    return names


def undeclared(packages: Iterable[str], allowed: set[str]) -> dict[str, list[str]]:
    """Modules imported by `packages` whose distribution is not in `allowed`, with their files."""
    distributions = packages_distributions()
    missing = {}
    for module, files in imported_modules(packages).items():
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not owners & allowed:
            missing[f"{module} ({', '.join(sorted(owners)) or 'not installed'})"] = sorted(files)
    return missing


def _project() -> dict[str, list[str] | dict[str, list[str]]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_product_imports_are_declared_dependencies() -> None:
    allowed = declared(_project()["dependencies"])
    assert undeclared(PRODUCT, allowed) == {}


def test_benchmark_imports_are_declared_in_the_dev_extra() -> None:
    project = _project()
    allowed = declared([*project["dependencies"], *project["optional-dependencies"]["dev"]])
    assert undeclared(BENCH, allowed) == {}


def test_client_imports_are_declared_in_the_client_extra() -> None:
    project = _project()
    allowed = declared([*project["dependencies"], *project["optional-dependencies"]["client"]])
    assert undeclared([CLIENT], allowed) == {}
    assert "geopandas" in imported_modules([CLIENT])  # the check does see the client


def test_the_check_sees_an_undeclared_import() -> None:
    """The check itself can fail: without numpy declared, the address library's use shows."""
    allowed = declared(r for r in _project()["dependencies"] if not r.startswith("numpy"))
    assert any(m.startswith("numpy ") for m in undeclared(PRODUCT, allowed))


def test_no_declared_dependency_goes_unused() -> None:
    """A runtime dependency nothing imports (rtree was one) is dead weight on every install.
    Distributions that are used without an import of their own are named here with why."""
    used_indirectly = {"python-multipart": "FastAPI parses forms (uploads) with it"}
    distributions = packages_distributions()
    imported = {
        canonicalize_name(d)
        for module in imported_modules(PRODUCT)
        for d in distributions.get(module, [])
    }
    unused = [
        Requirement(r).name
        for r in _project()["dependencies"]
        if canonicalize_name(Requirement(r).name) not in imported
        and Requirement(r).name not in used_indirectly
    ]
    assert unused == []
