"""The keys that protect personal data at rest: one secret, two derived keys, AES-GCM and HMAC-SHA-256.

Rules the rest of the code relies on:
- One secret of 32 random bytes, written as URL-safe base64 in the key file (`[security] key_file`,
  default data/secret.key, mode 0600) or given in the environment variable ADMISSIONS_BOT_KEY (the
  environment wins, as for the bot token). It never enters the database, a backup or a log.
- Two keys are derived from it with HKDF-SHA-256 under different labels: one encrypts, one hashes
  names. Knowing one tells nothing about the other, and rotating the secret changes both.
- The cipher is AES-256-GCM (cryptography's AESGCM), not Fernet: both are authenticated, but GCM's
  ciphertext is shorter (12-byte nonce + 16-byte tag against Fernet's 57 bytes of overhead before
  base64), it takes a 256-bit key, and it keeps no creation time in clear (Fernet's token carries its
  timestamp unencrypted, which would tell when each admission was typed). A fresh random 96-bit
  nonce per value; stored as "e1:" + URL-safe base64(nonce ‖ ciphertext ‖ tag). A value written
  under another key fails the tag check and raises KeyProblem("wrong"): never garbage.
- Names are compared through `name_key`: HMAC-SHA-256 over the folded name and the birth year,
  hex. Same person ⇒ same key, so the (name_key, birth_year) index still finds duplicates; the
  stored key reveals nothing without the secret (unlike a plain hash of a short name).
- An engine learns its keys once, when it is made (models.db attaches them to its dialect, see
  `attach`); nothing here is created at import time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_ENV = "ADMISSIONS_BOT_KEY"
SECRET_BYTES = 32
NONCE_BYTES = 12
PREFIX = "e1:"
CHECK_TOKEN = "admissions-bot key check v1"  # encrypted into the key_check row (models.keys)
_DIALECT_ATTRIBUTE = "admissions_keys"


class KeyProblem(Exception):
    """The key is missing, unreadable, malformed, or does not open the data ("wrong").

    `reason` names the catalog text (security.key_<reason>); `detail` is a path, never the key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _derive(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


@dataclass(frozen=True, repr=False)
class Keys:
    """The two keys derived from one secret (repr hides them)."""

    encryption: bytes
    hashing: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> Keys:
        """Derive the encryption key and the name-hashing key from the secret (HKDF-SHA-256)."""
        if len(secret) != SECRET_BYTES:
            raise KeyProblem("malformed")
        return cls(_derive(secret, b"admissions-bot encryption v1"), _derive(secret, b"admissions-bot name key v1"))

    @classmethod
    def from_text(cls, text: str, where: str = "") -> Keys:
        """Read the secret as written in a key file or the environment (URL-safe base64 of 32 bytes)."""
        try:
            secret = base64.urlsafe_b64decode(text.strip().encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise KeyProblem("malformed", where) from None
        if len(secret) != SECRET_BYTES:
            raise KeyProblem("malformed", where)
        return cls.from_secret(secret)

    def __repr__(self) -> str:
        return "Keys(<hidden>)"

    def encrypt(self, plain: str) -> str:
        """Return the stored form of `plain`: "e1:" + base64(nonce ‖ AES-GCM ciphertext ‖ tag)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.encryption).encrypt(nonce, plain.encode("utf-8"), None)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """Return the text sealed in `stored`; KeyProblem("wrong") when this key did not seal it."""
        if not stored.startswith(PREFIX):
            raise KeyProblem("wrong")  # plain text where a sealed value belongs: never shown as if decrypted
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX):].encode("ascii"))
            return AESGCM(self.encryption).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None).decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError):
            raise KeyProblem("wrong") from None

    def name_key(self, person: str) -> str:
        """Return HMAC-SHA-256 of `person` (models.admissions.person_key: folded name and birth year) in hex."""
        return hmac.new(self.hashing, person.encode("utf-8"), hashlib.sha256).hexdigest()

    def check_value(self) -> str:
        """Return a fresh key check value (the known token, sealed)."""
        return self.encrypt(CHECK_TOKEN)

    def opens(self, check_value: str) -> bool:
        """Tell whether this key sealed the stored key check value."""
        try:
            return hmac.compare_digest(self.decrypt(check_value), CHECK_TOKEN)
        except KeyProblem:
            return False


def new_secret_text() -> str:
    """Return a fresh random secret as written in a key file."""
    return base64.urlsafe_b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def write_key_file(path: Path) -> None:
    """Create the key file with a fresh secret, readable by its owner only (0600); never overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(new_secret_text() + "\n")


def read_key_file(path: Path) -> Keys:
    """Return the keys of a key file; KeyProblem("missing") when it does not exist."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyProblem("missing", str(path)) from None
    except (OSError, UnicodeDecodeError):
        raise KeyProblem("unreadable", str(path)) from None
    return Keys.from_text(text, str(path))


def keys_from_environment(environ: dict[str, str] | None = None) -> Keys | None:
    """Return the keys given in ADMISSIONS_BOT_KEY, or None when it is not set."""
    text = (os.environ if environ is None else environ).get(KEY_ENV, "").strip()
    return Keys.from_text(text, KEY_ENV) if text else None


def load_keys(key_file: Path, environ: dict[str, str] | None = None) -> Keys:
    """Return the keys from the environment when set, else from the key file."""
    return keys_from_environment(environ) or read_key_file(key_file)


def attach(dialect: Any, keys: Keys | None) -> None:
    """Give an engine's dialect its keys (what the Encrypted columns and name keys use)."""
    setattr(dialect, _DIALECT_ATTRIBUTE, keys)


def keys_of(dialect: Any) -> Keys:
    """Return the keys attached to a dialect; KeyProblem("missing") when the engine has none."""
    keys = getattr(dialect, _DIALECT_ATTRIBUTE, None)
    if keys is None:
        raise KeyProblem("missing")
    return keys
