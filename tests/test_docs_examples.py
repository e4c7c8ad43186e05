"""Every shell example in the documentation runs, as written, against a server holding what
`make run` loads, so a document that lies fails the suite.

The ```sh blocks of README.md and of every other Markdown file in the repository are run with
bash (`set -o pipefail`), one document per test, its blocks in order in one shell (a variable
one example sets, such as `KEY=$(...)`, is there for the next), in a temporary folder holding
the files the examples name (tests/data/docs/) and a `.venv` link to the project's virtualenv.
`localhost:8000` becomes the test server's address. `curl` is real curl with
`--fail-with-body`, so an example answered with a 4xx or 5xx fails like a command that exits
non-zero. A comment that starts with `{` or `[`, after a command or on the next line, is the
output the command must give: parsed as JSON, every key it names must be in the answer with a
matching value (`...` in a string matches anything, `x` after a dot matches a number:
`"15.x"`; a `, ...` before a closing bracket stands for the members not shown).

A block whose first line is `# not run by tests: <why>` is skipped (it starts a server, opens a
browser...); keep those rare. Blocks marked ```text, or with no language, are not examples.

The server runs on its own database in the test cluster, prepared exactly as `geo run` does
(`geo.bootstrap.prepare(samples=True)`: migrations, the admin key, the address library's
sample with its 200,000 generated addresses, the sample layer), so the other tests' data does
not disturb it nor it them. Preparing it takes about 15 s on the 2-core test machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import new_database
from tests.live_server import LiveServer, live_server

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "docs"
SKIP_MARK = "# not run by tests:"
DOC_PORT = "localhost:8000"
DOC_HOSTS = re.compile(r"(?:https?://)?(?:localhost|127\.0\.0\.1):8000")
SH_FENCE = re.compile(r"^```sh[ \t]*$", re.M)
STATUS = re.compile(r"(\d{3})(?:\s|$)")
IGNORED_DIRS = {".venv", "node_modules", ".git", ".data", "tianjin_geo.egg-info"}


def documents() -> list[Path]:
    """README.md first (later documents may use what it set up), then every other .md file
    with shell examples, in path order."""
    found = sorted(
        path
        for path in REPO.rglob("*.md")
        if not IGNORED_DIRS.intersection(path.relative_to(REPO).parts)
        and SH_FENCE.search(path.read_text())
    )
    readme = REPO / "README.md"
    return [readme, *(p for p in found if p != readme)]


@dataclass
class Command:
    text: str  # the logical line: continuations joined, comment kept
    line: int  # where it starts in the document
    expected: list[str] = field(default_factory=list)  # JSON comments: the output it must give


@dataclass
class Block:
    line: int
    commands: list[Command]
    skip: str | None  # why the document says it is not run


def _comment_start(line: str) -> int:
    """Index of a shell comment's `#` (outside quotes, at a word start), or -1."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return i
    return -1


def _is_expectation(note: str) -> bool:
    """A comment that shows a command's output: JSON, or an HTTP status (`-w '%{http_code}'`)."""
    return note[:1] in ("{", "[") or bool(STATUS.match(note))


def parse_blocks(markdown: str) -> list[Block]:
    blocks: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```sh":
            i += 1
            continue
        start, i = i + 1, i + 1
        body: list[tuple[int, str]] = []
        while lines[i].strip() != "```":
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        skip = None
        if body and body[0][1].strip().startswith(SKIP_MARK):
            skip = body[0][1].strip().removeprefix(SKIP_MARK).strip()
        commands: list[Command] = []
        pending: tuple[int, str] | None = None
        for number, raw in body:
            if pending is not None:
                number, raw = pending[0], pending[1] + "\n" + raw
                pending = None
            if raw.rstrip().endswith("\\"):
                pending = (number, raw)
                continue
            stripped = raw.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                note = stripped[1:].strip()
                if commands and _is_expectation(note):
                    commands[-1].expected.append(note)
                continue
            command = Command(raw, number)
            last_line = raw.splitlines()[-1]
            hash_at = _comment_start(last_line)
            if hash_at >= 0 and _is_expectation(last_line[hash_at + 1 :].strip()):
                command.expected.append(last_line[hash_at + 1 :].strip())
            commands.append(command)
        blocks.append(Block(start, commands, skip))
    return blocks


# --- expected output ------------------------------------------------------------------------


def _pattern(expected: str) -> re.Pattern[str]:
    text = re.escape(expected)
    text = text.replace(re.escape("..."), ".*")
    text = re.sub(r"(?<=\\\.)x", r"\\d+", text)
    return re.compile(text, re.S)


def _parse_expected(note: str) -> Any:
    return json.loads(re.sub(r",\s*\.\.\.\s*(?=[}\]])", "", note))


def mismatches(expected: Any, actual: Any, where: str = "") -> list[str]:
    """What in `actual` differs from the documented `expected` (empty when it matches)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or 'answer'}: expected an object, got {actual!r:.200}"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}{key}: missing")
            else:
                problems += mismatches(value, actual[key], f"{where}{key}.")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) < len(expected):
            return [f"{where or 'answer'}: expected a list like {expected!r:.200}"]
        return [p for e, a in zip(expected, actual, strict=False) for p in mismatches(e, a, where)]
    if isinstance(expected, str) and isinstance(actual, str):
        if _pattern(expected).fullmatch(actual):
            return []
    elif expected == actual and type(expected) is type(actual):
        return []
    return [f"{where.rstrip('.') or 'answer'}: documented {expected!r}, got {actual!r:.200}"]


def status_mismatches(note: str, output: str) -> list[str]:
    """`200` (then prose) or `200 "..."` (then a quoted header value, such as an ETag) against
    what `curl -w '%{http_code} ...'` printed."""
    words = output.split(None, 1)
    status, _, rest = note.partition(" ")
    if not words or words[0] != status:
        return [f"documented {note!r}, got {output[:300]!r}"]
    quoted = re.match(r'"[^"]*"', rest.strip())
    if quoted and not (len(words) > 1 and _pattern(quoted.group()).fullmatch(words[1].strip())):
        return [f"documented {note!r}, got {output[:300]!r}"]
    return []


# --- the server -------------------------------------------------------------------------------


@dataclass
class DocsEnv:
    server: LiveServer
    env: dict[str, str]


@pytest.fixture(scope="module")
def docs_env(database_url: str) -> Iterator[DocsEnv]:
    admin_key = "tjg_docs_" + secrets.token_urlsafe(24)
    with new_database(database_url) as docs_url:
        env = {"DATABASE_URL": docs_url, "GEO_ADMIN_KEY": admin_key}
        # What `geo run` does before serving (geo.cli.run), in a process of its own.
        subprocess.run(
            [sys.executable, "-c", "from geo.bootstrap import prepare; prepare(samples=True)"],
            env={**os.environ, **env},
            check=True,
            timeout=600,
        )
        with live_server(env=env) as server:
            yield DocsEnv(server, env)


@pytest.fixture(scope="module")
def key(docs_env: DocsEnv) -> str:
    """`$KEY` for the documents that use one without making it: an editor key of a department
    that is the address authority (README.md makes its own, `police`)."""
    done = subprocess.run(
        [
            *(str(REPO / ".venv/bin/geo"), "department", "create", "文档示例"),
            *("--code", "docs", "--role", "editor", "--address-authority"),
        ],
        env={**os.environ, **docs_env.env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(DATA, work, ignore=shutil.ignore_patterns("README.md"))
    (work / ".venv").symlink_to(REPO / ".venv")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    real = shutil.which("curl")
    assert real, "curl is needed to run the documentation's examples"
    curl.write_text(f'#!/bin/sh\nexec {real} --fail-with-body "$@"\n')
    curl.chmod(0o755)
    return work


def _script(commands: list[Command], base: str, out: Path) -> str:
    lines = ["set -o pipefail"]
    for i, command in enumerate(commands):
        text = DOC_HOSTS.sub(base, command.text)
        lines += [
            "{",
            text,
            f"}} >{out}/{i}.out 2>{out}/{i}.err",
            f"status=$?; echo $status >{out}/{i}.rc; [ $status -eq 0 ] || exit 0",
        ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_shell_examples_run_as_documented(
    doc: Path, docs_env: DocsEnv, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    blocks = parse_blocks(doc.read_text())
    commands = [c for b in blocks if b.skip is None for c in b.commands]
    assert commands, f"{doc}: no runnable examples"
    work = _workdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    base = docs_env.server.base.removeprefix("http://")
    path = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != REPO / ".venv/bin"]
    env = {**os.environ, **docs_env.env, "PATH": os.pathsep.join([str(tmp_path / "bin"), *path])}
    if doc != REPO / "README.md":  # README.md makes its own, as its first key after the admin's
        env["KEY"] = request.getfixturevalue("key")
    script = tmp_path / "examples.sh"
    script.write_text(_script(commands, base, out))
    subprocess.run(["bash", str(script)], cwd=work, env=env, timeout=600, check=True)
    problems = []
    for i, command in enumerate(commands):
        where = f"{doc.relative_to(REPO)}:{command.line}: {command.text.splitlines()[0]}"
        rc_file = out / f"{i}.rc"
        if not rc_file.exists():
            break
        output = (out / f"{i}.out").read_text(errors="replace")
        rc = int(rc_file.read_text())
        if rc != 0:
            stderr = (out / f"{i}.err").read_text(errors="replace")
            problems.append(f"{where}\n  exit {rc}\n  {output[:500]}{stderr[:500]}")
            break
        for note in command.expected:
            if STATUS.match(note):
                problems += [f"{where}\n  {p}" for p in status_mismatches(note, output)]
                continue
            try:
                answer = json.loads(output)
            except ValueError:
                problems.append(f"{where}\n  not JSON: {output[:300]}")
                continue
            problems += [f"{where}\n  {p}" for p in mismatches(_parse_expected(note), answer)]
    ran = len(list(out.glob("*.rc")))
    assert not problems, "\n".join(problems) + "\n\nserver log:\n" + docs_env.server.log()[-2000:]
    assert ran == len(commands)


def test_parser_reads_continuations_comments_and_marks() -> None:
    """The extraction itself, on a small document (a broken parser would run nothing)."""
    blocks = parse_blocks(
        'text\n```sh\ncurl -s a \\\n  -d \'{"x": "#1"}\'   # {"ok": true}\n# plain note\n'
        'curl -s b\n# {"status": "ok", ...}\n```\n```sh\n# not run by tests: starts a '
        "server\nmake run &\n```\n```text\nignored\n```\n"
    )
    assert [len(b.commands) for b in blocks] == [2, 1]
    first, second = blocks[0].commands
    assert first.text.endswith('# {"ok": true}') and first.expected == ['{"ok": true}']
    assert second.expected == ['{"status": "ok", ...}']
    assert blocks[1].skip == "starts a server"
    assert (
        mismatches(
            _parse_expected('{"v": "15.x", "k": "tjg_...", ...}'),
            {"v": "15.4", "k": "tjg_abc", "z": 1},
        )
        == []
    )
    assert mismatches({"v": "15.x"}, {"v": "16.1"}) != []
    assert status_mismatches('200 "..."', '200 "abc"\n') == []
    assert status_mismatches("200 (a park); 401 without the key", "200\n") == []
    assert status_mismatches("200", "204\n") != []
    assert status_mismatches('200 "..."', "200 \n") != []
