"""No input gives a 5xx, and every answer is one the OpenAPI document declares.

Schemathesis generates requests from `/api` (valid ones and deliberately broken ones: wrong
types, missing members, odd characters, huge numbers, unknown parameters) and checks every
response: not a server error, a documented status code and media type, a body that fits the
documented schema. It runs against a real `geo serve` process (tests/live_server.py) on a
database of its own, created in the session's cluster and seeded with the sample layer, the
divisions and a few thousand addresses: the fuzzer deletes layers, revokes keys and retires
addresses, which the other tests sharing the session database must not see. It runs twice,
with the platform admin key and anonymously, so that both the work behind the checks and the
refusals are explored. The seed is fixed and the budget bounded (a few minutes in all);
tests/schemathesis.toml gives it ids that exist, so that requests get past the first lookup.

A failing run prints schemathesis' report: every failing case with a curl command to reproduce
it against a server started the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from tests.conftest import ADMIN_KEY, new_database
from tests.live_server import LiveServer, live_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
FUZZ_SEED = 20261205
# Seconds of generated requests per run; coverage, fuzzing and stateful phases share them.
BUDGET_S = {"admin": 120, "anonymous": 60}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
SAMPLE_ADDRESSES = 2000

# Run in a process of its own, whose DATABASE_URL is the fuzz database (the test process keeps
# the session's engines).
SEED = f"""
from addressbook.sample import load_sample as load_addresses
from geo.db import ensure_extensions, session_scope
from geo.migrations import upgrade
from layers.sample import load_sample as load_layers

ensure_extensions()
upgrade()
with session_scope() as session:
    load_addresses(session, {SAMPLE_ADDRESSES})
with session_scope() as session:
    load_layers(session)
"""


@pytest.fixture(scope="module")
def fuzz_database(database_url: str) -> Iterator[str]:
    """A database of its own in the session's cluster, migrated and seeded; dropped after."""
    with new_database(database_url) as fuzz_url:
        seeded = subprocess.run(
            [sys.executable, "-c", SEED],
            env={**os.environ, "DATABASE_URL": fuzz_url},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        yield fuzz_url


@pytest.fixture(scope="module")
def fuzz_server(
    fuzz_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # GEO_ADMIN_KEY comes from the session's environment and is installed at start. Rate limits
    # off: one client sends thousands of requests a minute, and a 429 would end its exploration.
    # Offline packages capped at 2,000 tiles: an archive is built whole before its first byte
    # (tiles.routers.offline), and the default z8-16 of the whole city takes longer than the
    # fuzzer's 10 s read timeout; its answers (archive, 413, 4xx) are all still explored.
    env = {
        "DATABASE_URL": fuzz_database,
        "GEO_DATA_DIR": str(tmp_path_factory.mktemp("fuzz-data")),
        "GEO_RATE_LIMITS": "false",
        "GEO_PMTILES_MAX_TILES": "2000",
    }
    with live_server(env=env) as server:
        yield server


def run_schemathesis(server: LiveServer, who: str, report_dir: Path) -> tuple[dict[str, Any], str]:
    """One bounded run; its JSON report and its console output."""
    argv = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run"]
    argv += [server.base + "/api", "--seed", str(FUZZ_SEED), "--max-time", str(BUDGET_S[who])]
    argv += ["--workers", "1", "--checks", ",".join(CHECKS), "--continue-on-failure"]
    argv += ["--report", "json", "--report-dir", str(report_dir), "--output-truncate", "false"]
    if who == "admin":
        argv += ["--header", f"Authorization: Bearer {ADMIN_KEY}"]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=BUDGET_S[who] + 300, cwd=report_dir
    )
    reports = sorted(report_dir.glob("*.json"))
    assert reports, f"schemathesis wrote no report:\n{done.stdout[-5000:]}\n{done.stderr[-3000:]}"
    return json.loads(reports[-1].read_text()), done.stdout + done.stderr


def failures_first(output: str) -> str:
    """The errored and failing cases (each with its curl command), then the summary: CI logs
    keep only so much of an assertion message, and the cases are what a reader needs to
    reproduce."""
    found = [i for i in (output.find("= ERRORS ="), output.find("= FAILURES =")) if i >= 0]
    start = min(found, default=-1)
    cases = output[start : start + 12000] if start >= 0 else ""
    return f"{cases}\n...\n{output[-4000:]}"


@pytest.mark.parametrize("who", ["admin", "anonymous"])
def test_no_input_gives_a_server_error_or_an_undocumented_answer(
    fuzz_server: LiveServer, who: str, tmp_path: Path
) -> None:
    report, output = run_schemathesis(fuzz_server, who, tmp_path)
    totals = {
        "operations": report["operations"]["tested"],
        "test_cases": report["test_cases"]["generated"],
        "with_failures": report["test_cases"]["with_failures"],
        "errored": report["test_cases"]["errored"],
        "seconds": round(report["running_time"]),
    }
    print(f"schemathesis ({who}): {totals}")
    failed = f"{totals}\n{failures_first(output)}"
    assert report["exit_code"] == 0, failed
    assert report["test_cases"]["with_failures"] == 0, failed
    assert report["test_cases"]["errored"] == 0 and not report["errors"], failed
    # Every operation was reached, and none had parts of its schema skipped as unresolvable.
    assert report["operations"]["tested"] == report["operations"]["total"], failed
    assert not report["warnings"]["unresolvable_reference"], failed
    assert report["test_cases"]["generated"] > 1000, failed
    assert fuzz_server.alive()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref}: only references inside the document are expected"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_openapi_document_is_valid_and_every_reference_resolves(client: TestClient) -> None:
    doc = client.get("/api").json()
    validate(doc)  # OpenAPI 3.1 (FastAPI's version), JSON Schema 2020-12 included
    refs = set(_refs(doc))
    assert "#/components/schemas/PropertyIn" in refs  # POST /collections' nested model
    for ref in refs:
        _resolve(doc, ref)
    assert "$defs" not in json.dumps(doc["paths"])


def test_every_error_response_is_declared_in_the_one_shape(client: TestClient) -> None:
    doc = client.get("/api").json()
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) > 50
    for label, operation in operations:
        responses = operation["responses"]
        # Unknown query parameters are a 400 everywhere; FastAPI's 422 is never sent.
        assert "400" in responses, label
        assert "422" not in responses or "HTTPValidationError" not in json.dumps(responses), label
        for status, response in responses.items():
            if status >= "400":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (label, status)
        if "requestBody" in operation:
            assert "413" in responses, label
    error = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["code", "message", "details"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
