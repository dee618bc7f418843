"""Charger passwords (OCPP 1.6 Security Profile 1/2, HTTP Basic): stored only as salted
PBKDF2-SHA256 hashes.

600,000 iterations: OWASP's current guidance for PBKDF2-HMAC-SHA256 (about 0.1 s of one
core here). The stdlib has it (no dependency); the admission gate verifies a charger's
password once per process and then remembers the match, so a reconnecting fleet does not
pay it on every connect. Hashes made with fewer iterations (older releases used 60,000)
still verify, and :func:`needs_rehash` tells the gate to store a new hash after a success.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 600_000
MIN_LENGTH, MAX_LENGTH = 16, 40  # the OCPP 1.6 security whitepaper's AuthorizationKey


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<hash>`` for ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password`."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        computed = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
        return hmac.compare_digest(computed, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` (a hash that just verified) was made with weaker parameters than
    :func:`hash_password` uses today."""
    try:
        scheme, iterations, _salt, _digest = stored.split("$")
        return scheme != "pbkdf2_sha256" or int(iterations) < ITERATIONS
    except ValueError:
        return True


def check_password_rules(password: str) -> str | None:
    """Why ``password`` is not acceptable as a charger password, or None."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return f"a charger password has {MIN_LENGTH} to {MAX_LENGTH} characters"
    if not password.isprintable():
        return "a charger password has printable characters only"
    return None
