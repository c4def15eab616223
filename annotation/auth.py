"""Password hashing for campaign logins: salted scrypt, constant-time comparison; no plain text anywhere."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# scrypt cost: about 30-60 ms per check on a laptop core; the work factor is stored with each hash.
_N, _R, _P = 2**14, 8, 1
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt_hex$hash_hex` for a password of 8..1024 characters."""
    check_password_policy(password)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash; malformed hashes and oversized input simply fail."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD or not stored:
        return False
    try:
        algo, n, r, p, salt_hex, hash_hex = stored.split("$")
        if algo != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p),
                                dklen=len(hash_hex) // 2, maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


def check_password_policy(password: str) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
