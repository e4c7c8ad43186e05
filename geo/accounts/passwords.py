"""Password hashing: argon2id through argon2-cffi's PasswordHasher (RFC 9106 low-memory
parameters, its default), and one-time passwords for accounts an administrator sets up."""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher()
# Verified when the username is unknown, so that an unknown user costs the same time as a
# wrong password and the answer's timing does not tell which usernames exist.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
# One-time passwords: 16 characters from every class, well past the strength policy.
_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, "-_.+!#%")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; `None` (no such account) verifies against a dummy hash and
    fails, taking as long as a real check."""
    try:
        return HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the hasher's current ones: the
    next successful sign-in stores a new hash."""
    return HASHER.check_needs_rehash(password_hash)


def temporary_password() -> str:
    """A password for the person to use once, at their first sign-in."""
    alphabet = "".join(_CLASSES)
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(16))
        if all(any(c in group for c in candidate) for group in _CLASSES):
            return candidate
