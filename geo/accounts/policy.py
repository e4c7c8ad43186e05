"""The minimum password strength, as level 3 of China's classified protection (等级保护) asks:
long enough, mixed character classes, not the username, not a common password.

"Common" is judged by zxcvbn (Dropbox's estimator and its frequency lists of leaked passwords,
keyboard walks, sequences and repeats): a password is refused when zxcvbn rates it weak, or when
such well-known pieces make up much of it (`Admin@12345`, `1qaz@WSX3edc` and `Woaini1314!` pass
the length and class rules and zxcvbn's score, but are among the first an attacker tries).
"""

from __future__ import annotations

import string
from typing import Any

from zxcvbn import zxcvbn

from geo.errors import ApiError

MIN_LENGTH = 10
MAX_LENGTH = 128
MIN_CLASSES = 3
# zxcvbn's scores run 0-4; 3 means about 10^8 guesses or more.
MIN_SCORE = 3
# zxcvbn refuses longer input; the rest of a longer password only adds strength.
ESTIMATED_LENGTH = 72
# Patterns zxcvbn finds that an attacker tries first, and the share of a password they may make.
GUESSABLE = frozenset({"spatial", "sequence", "repeat"})
MAX_GUESSABLE_SHARE = 0.4


def _classes(password: str) -> int:
    tests = (str.isupper, str.islower, str.isdigit)
    found = sum(any(test(c) for c in password) for test in tests)
    symbol = any(not c.isalnum() and c not in string.whitespace for c in password)
    return found + symbol


def _refuse(rule: str, message: str) -> ApiError:
    return ApiError(400, "WeakPassword", message, {"rule": rule})


def _guessable_share(password: str, result: Any) -> float:
    covered = sum(
        len(match["token"])
        for match in result["sequence"]
        if match["pattern"] in GUESSABLE
        or (match["pattern"] == "dictionary" and match.get("dictionary_name") == "passwords")
    )
    return covered / len(password)


def check(password: str, username: str, context: tuple[str, ...] = ()) -> None:
    """Refuse a password below the policy with a 400 `WeakPassword` whose `details.rule` names
    the rule it fails: length, classes, username, common. `context` lists other words the
    password must not lean on (the department's code and name)."""
    if len(password) < MIN_LENGTH:
        raise _refuse("length", f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise _refuse("length", f"a password has at most {MAX_LENGTH} characters")
    if _classes(password) < MIN_CLASSES:
        raise _refuse(
            "classes",
            f"a password needs characters of at least {MIN_CLASSES} of these classes: "
            "capital letters, small letters, digits, symbols",
        )
    if username and username.lower() in password.lower():
        raise _refuse("username", "a password must not contain the username")
    estimated = password[:ESTIMATED_LENGTH]
    result = zxcvbn(estimated, user_inputs=[username, *context])
    if result["score"] < MIN_SCORE or _guessable_share(estimated, result) >= MAX_GUESSABLE_SHARE:
        warning = result["feedback"]["warning"] or "it is made of well-known pieces"
        raise _refuse("common", f"the password is too easy to guess: {warning}")
