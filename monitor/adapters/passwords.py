"""Password hashes: argon2id (argon2-cffi) for new ones, bcrypt ones verified as well.

Verifying costs real CPU and memory on purpose (argon2id's default: 64 MiB, three passes), so
the web layer runs it in a worker thread. An unknown user name is checked against a dummy
hash of the same cost, so the time an answer takes does not tell which names exist.
"""

from __future__ import annotations

import secrets

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError

ARGON2ID_PREFIX = "$argon2id$"
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# bcrypt only looks at the first 72 bytes; the tools that made such hashes (htpasswd -B)
# cut longer passwords there, which the bcrypt package leaves to its caller.
_BCRYPT_MAX_BYTES = 72


def hash_problem(text: str) -> str | None:
    """Why ``text`` is not a password hash svarstid can verify, or None when it is one."""
    if text.startswith(ARGON2ID_PREFIX):
        try:
            argon2.extract_parameters(text)
        except InvalidHashError:
            return "not a valid argon2id hash"
        return None
    if text.startswith(BCRYPT_PREFIXES):
        if len(text) != 60:
            return "not a valid bcrypt hash"
        return None
    return "must be an argon2id ($argon2id$…) or bcrypt ($2b$…) hash"


class Passwords:
    """Hashes new passwords with argon2id and verifies argon2id and bcrypt hashes."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or argon2.PasswordHasher()
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches; a malformed hash never matches (and never raises)."""
        if password_hash.startswith(BCRYPT_PREFIXES):
            return _bcrypt_matches(password_hash, password)
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def verify_unknown(self, password: str) -> bool:
        """The work of a verification for a name that has no account; always False."""
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self.verify(self._dummy_hash, password)
        return False


def _bcrypt_matches(password_hash: str, password: str) -> bool:
    candidate = password.encode("utf-8")[:_BCRYPT_MAX_BYTES]
    try:
        return bcrypt.checkpw(candidate, password_hash.encode("ascii"))
    except ValueError:
        return False
