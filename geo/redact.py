"""Keep credentials out of the server's log lines.

Map clients that cannot set headers send their key as `?key=` (and tile clients a `?token=`);
uvicorn's access log prints every request line with its query string, so without this filter
each such request wrote a working credential into the log, readable by anyone who can read logs
or their backups. The filter rewrites the values of those parameters (whatever their case or
percent-encoding, which the query parser would undo) before any handler formats the record.

`geo serve` installs it on its one log handler (geo.logs.log_config, a dictConfig that uvicorn
applies in every worker process it starts), so every line is covered, whoever logs it.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
SECRET_PARAMETERS = frozenset({"key", "token"})
# A query string: from "?" to the next space, quote or end of text.
_QUERY = re.compile(r"\?([^\s\"'<>]*)")


def _redact_query(match: re.Match[str]) -> str:
    pairs = []
    for pair in match.group(1).split("&"):
        name, sep, _ = pair.partition("=")
        if sep and unquote_plus(name).strip().lower() in SECRET_PARAMETERS:
            pair = f"{name}={REDACTED}"
        pairs.append(pair)
    return "?" + "&".join(pairs)


def redact(text: str) -> str:
    """`text` with the value of every `key=` and `token=` query parameter replaced."""
    if "?" not in text:
        return text
    return _QUERY.sub(_redact_query, text)


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """A logging filter that redacts credentials in a record's message and arguments.

    The arguments are redacted one by one rather than folded into the message, because
    uvicorn's access formatter reads them by position (client, method, path, version, status).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        return True
