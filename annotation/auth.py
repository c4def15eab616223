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


class LoginThrottle:
    """Failed-login bookkeeping: a name is locked after `max_failures` wrong passwords within `window` seconds, an
    address after `ip_max_failures`; each lock lasts `lockout` seconds. Thread-safe; times are passed in (testable).

    Kept in memory: a server restart clears it (the lockout is a brake on guessing, not an audit log).
    """

    def __init__(self, max_failures: int = 5, lockout: float = 300.0, window: float = 900.0,
                 ip_max_failures: int = 50) -> None:
        import threading

        self.max_failures, self.lockout, self.window, self.ip_max_failures = max_failures, lockout, window, \
            ip_max_failures
        self._fail: dict[tuple[str, str], list[float]] = {}
        self._locked: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def retry_after(self, username: str, ip: str, now: float) -> float:
        """Seconds until this name or address may try again (0 when not locked)."""
        with self._lock:
            wait = 0.0
            for key in (("user", username), ("ip", ip)):
                until = self._locked.get(key, 0.0)
                if until > now:
                    wait = max(wait, until - now)
                elif key in self._locked:
                    del self._locked[key]
            return wait

    def failed(self, username: str, ip: str, now: float) -> float:
        """Record a wrong password; returns the lock now in force (seconds, 0 when none)."""
        with self._lock:
            wait = 0.0
            for key, limit in ((("user", username), self.max_failures), (("ip", ip), self.ip_max_failures)):
                times = [t for t in self._fail.get(key, []) if t > now - self.window]
                times.append(now)
                if len(times) >= limit:
                    self._locked[key] = now + self.lockout
                    times = []
                    wait = max(wait, self.lockout)
                self._fail[key] = times
            if len(self._fail) > 100_000:  # bound memory under a flood of made-up names
                for k in [k for k, v in self._fail.items() if not v or v[-1] < now - self.window]:
                    del self._fail[k]
            return wait

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._fail.pop(("user", username), None)
