"""MQTT passwords, stored only as hashes, in Mosquitto's own password-file format.

Mosquitto 2.x writes `user:$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>`.
Using the same format for the embedded broker means one password file works
with both brokers, and Mosquitto itself can check what we generate.
"""

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from machikit.private import new_folders, write_private_text

ITERATIONS = 101  # mosquitto_passwd's default for $7$
SALT_BYTES = 12


def new_password() -> str:
    """A random password a person can still type from a label (no 0/O, 1/l)."""
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(20))


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, kind, iterations, salt, digest = stored.split("$")
        if kind != "7":
            return False
        expected = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(expected, base64.b64decode(digest))


def read_password_file(path: Path) -> dict[str, str]:
    users = {}
    if path.exists():
        for line in path.read_text("utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                user, _, stored = line.partition(":")
                users[user] = stored
    return users


def write_password_file(path: Path, users: dict[str, str]) -> None:
    """Write atomically with owner-only permissions: hashes are still secrets."""
    new_folders(path.parent)
    lines = "".join(f"{u}:{h}\n" for u, h in sorted(users.items()))
    write_private_text(path, lines)  # LF: Mosquitto reads "\n" ends
