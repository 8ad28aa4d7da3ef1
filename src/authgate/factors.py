"""Second factors, without I/O: TOTP (RFC 6238, through pyotp), recovery codes, and how
they are kept on the user record.

A user's factors are one JSON document in `User.factors`, opaque to the stores:

- the TOTP secret is encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from
  the gate's signing secret, so a dump of the store alone does not give it away; keys of
  the ring's older secrets still decrypt, so rotating the signing key keeps the factors.
  The time step of the last accepted code is kept too: a code is accepted once.
- recovery codes are shown once and kept as SHA-256 hashes (each has 60 random bits, too
  many to guess, so a fast hash is enough); each works once.
- passkeys (WebAuthn credentials) are kept as their id and public key, which are no
  secrets, with the authenticator's signature counter (`authgate.flows.passkeys`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigError, ValidationError

__all__ = [
    "RECOVERY_CODES",
    "Factors",
    "Passkey",
    "SecretBox",
    "TotpFactor",
    "new_recovery_codes",
    "recovery_hash",
]

#: How many recovery codes an enrolment makes.
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud, typed by hand
_CODE_GROUPS = 3
_GROUP = 4
#: TOTP: 30-second steps, 6 digits, SHA-1 (what every authenticator app reads), and a
#: code of the step before or after accepted (clocks drift).
STEP = 30
DIGITS = 6
WINDOW = 1


class SecretBox:
    """Encrypts the secrets of factors (AES-256-GCM) under keys derived from the signing
    secrets: the first encrypts, all decrypt."""

    def __init__(self, secrets_: Sequence[bytes]) -> None:
        if not secrets_:
            raise ConfigError("a SecretBox needs at least one secret")
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        def derive(secret: bytes) -> AESGCM:
            key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"authgate-factors-v1"
            ).derive(secret)
            return AESGCM(key)

        self._ciphers = [derive(s) for s in secrets_]

    def seal(self, plaintext: str, context: str) -> str:
        """`plaintext` encrypted and bound to `context` (the user's id: a sealed secret
        copied onto another user does not open)."""
        nonce = secrets.token_bytes(12)
        sealed = self._ciphers[0].encrypt(nonce, plaintext.encode(), context.encode())
        return "v1." + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        """The plaintext of `seal`; `ValueError` when no key opens it."""
        from cryptography.exceptions import InvalidTag

        if not sealed.startswith("v1."):
            raise ValueError("not a sealed secret")
        raw = base64.urlsafe_b64decode(sealed[3:])
        nonce, body = raw[:12], raw[12:]
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, body, context.encode()).decode()
            except InvalidTag:
                continue
        raise ValueError("no key of the ring opens this secret")


@dataclass(frozen=True, slots=True)
class TotpFactor:
    """A TOTP authenticator: its sealed secret, whether a first code confirmed it, and
    the time step of the last code accepted."""

    sealed: str = field(repr=False)
    confirmed: bool = False
    last_step: int = 0
    created_at: float = 0.0

    def verify(self, box: SecretBox, context: str, code: object, now: float | None = None) -> int:
        """The time step `code` belongs to, when it is a valid code of this
        authenticator not older than the last one accepted; 0 otherwise (a code
        replayed, from too long ago, or malformed)."""
        if not isinstance(code, str):
            return 0
        digits = code.replace(" ", "")
        if len(digits) != DIGITS or not digits.isascii() or not digits.isdigit():
            return 0
        import pyotp

        totp = pyotp.TOTP(box.open(self.sealed, context), digits=DIGITS, interval=STEP)
        current = int((time.time() if now is None else now) // STEP)
        found = 0
        for step in range(current - WINDOW, current + WINDOW + 1):
            expected = totp.at(step * STEP)
            if hmac.compare_digest(expected.encode(), digits.encode()) and step > self.last_step:
                found = step
        return found


def new_totp_secret() -> str:
    """A new TOTP secret: 160 random bits, base32 (RFC 4226's recommended length)."""
    import pyotp

    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads (from a QR code)."""
    import pyotp

    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(
        name=username, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """`uri` as a QR code, an SVG document (segno)."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=4, xmldecl=False)
    return out.getvalue().decode()


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """`count` fresh recovery codes, ``xxxx-xxxx-xxxx`` (60 random bits each)."""
    return [
        "-".join(
            "".join(secrets.choice(_ALPHABET) for _ in range(_GROUP)) for _ in range(_CODE_GROUPS)
        )
        for _ in range(count)
    ]


def recovery_hash(code: str) -> str:
    """What is kept of a recovery code: the SHA-256 of its normalised spelling (case,
    spaces and dashes do not matter)."""
    normal = "".join(c for c in code.lower() if c.isalnum())
    return hashlib.sha256(f"authgate-recovery\x00{normal}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Passkey:
    """A registered WebAuthn credential: its id and COSE public key (base64url), the
    signature counter last seen, and what the user and the authenticator said of it."""

    id: str
    public_key: str = field(repr=False)
    sign_count: int = 0
    name: str = ""
    transports: tuple[str, ...] = ()
    backed_up: bool = False
    aaguid: str = ""
    created_at: float = 0.0
    last_used_at: float = 0.0

    def to_public_dict(self) -> dict[str, Any]:
        """What ``GET /auth/passkeys`` shows of it (no key)."""
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at or None,
            "backed_up": self.backed_up,
            "transports": list(self.transports),
        }


@dataclass(frozen=True, slots=True)
class Factors:
    """A user's second factors, as `User.factors` keeps them (JSON)."""

    totp: TotpFactor | None = None
    recovery: tuple[str, ...] = ()
    passkeys: tuple[Passkey, ...] = ()

    @property
    def active(self) -> bool:
        """Does logging in need a second step?"""
        return (self.totp is not None and self.totp.confirmed) or bool(self.passkeys)

    def passkey(self, credential_id: str) -> Passkey | None:
        """The passkey of id `credential_id`, if it is one of these (any text: compared
        as bytes)."""
        wanted = credential_id.encode("utf-8", "surrogatepass")
        for key in self.passkeys:
            if hmac.compare_digest(key.id.encode(), wanted):
                return key
        return None

    @classmethod
    def load(cls, text: str) -> Factors:
        """The factors of a `User.factors` document ("" is none)."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            totp = data.get("totp")
            return cls(
                totp=TotpFactor(**totp) if totp else None,
                recovery=tuple(data.get("recovery", ())),
                passkeys=tuple(
                    Passkey(**{**key, "transports": tuple(key.get("transports", ()))})
                    for key in data.get("passkeys", ())
                ),
            )
        except (ValueError, TypeError, AttributeError) as err:
            raise ValidationError("the user's second factors are unreadable") from err

    def dump(self) -> str:
        """The `User.factors` document ("" when there are none)."""
        data: dict[str, Any] = {}
        if self.totp is not None:
            totp = self.totp
            data["totp"] = {
                "sealed": totp.sealed,
                "confirmed": totp.confirmed,
                "last_step": totp.last_step,
                "created_at": totp.created_at,
            }
        if self.recovery:
            data["recovery"] = list(self.recovery)
        if self.passkeys:
            data["passkeys"] = [
                {
                    "id": key.id,
                    "public_key": key.public_key,
                    "sign_count": key.sign_count,
                    "name": key.name,
                    "transports": list(key.transports),
                    "backed_up": key.backed_up,
                    "aaguid": key.aaguid,
                    "created_at": key.created_at,
                    "last_used_at": key.last_used_at,
                }
                for key in self.passkeys
            ]
        return json.dumps(data, sort_keys=True) if data else ""

    def with_recovery(self, codes: Iterable[str]) -> Factors:
        """These factors with a new set of recovery codes (the old set is void)."""
        return replace(self, recovery=tuple(recovery_hash(c) for c in codes))

    def spend_recovery(self, code: object) -> Factors | None:
        """These factors without the recovery code `code`, or None when it is none of
        them (compared in constant time, every one)."""
        if not isinstance(code, str) or not 8 <= len(code) <= 64:
            return None
        presented = recovery_hash(code)
        kept = [h for h in self.recovery if not hmac.compare_digest(h, presented)]
        if len(kept) == len(self.recovery):
            return None
        return replace(self, recovery=tuple(kept))
