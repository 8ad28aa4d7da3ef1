"""Passkeys (WebAuthn), without I/O: the options of a registration or an authentication
ceremony and the checks of their answers, through py_webauthn.

A ceremony's state is no store record: its challenge travels in a short-lived signed
token of its own type (``typ: authgate-passkey+jwt``, its own audience), which the
answer brings back; the flows (`authgate.flows.passkeys`) spend each token once.  The
relying party's id and the origins it accepts come from configuration
(``AUTHGATE_PASSKEY_RP_ID``, ``AUTHGATE_PASSKEY_ORIGINS``), never from a request.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import documents
from .errors import ConfigError, InvalidToken, ValidationError
from .factors import Passkey
from .tokens import TokenVerifier
from .users import User

__all__ = ["CeremonyClaims", "PasskeyRules", "Refused", "credential_id_of", "user_handle_of"]

#: The purposes of a ceremony token: adding a passkey, a login by passkey alone, and
#: a signed-in user proving who they are again.
REGISTER = "register"
LOGIN = "login"
REAUTH = "reauth"
#: The longest credential JSON read (attestations with certificate chains are a few KiB).
MAX_CREDENTIAL = 32_768
_MAX_NAME = 64
_CREDENTIAL_ID = re.compile(r"[A-Za-z0-9_-]{16,1400}")

# py_webauthn raises its own tree (WebAuthnException) on an answer it cannot read, and
# lets through what its parsers raise: base64 and CBOR decoding (ValueError), a wrong
# type where a field was (TypeError, KeyError, AttributeError).  All are a refusal.


class Refused(Exception):
    """An answer that does not verify; `reason` is for the audit log, never the client
    (it may name a stored counter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class CeremonyClaims:
    """What a ceremony token says: its purpose, its challenge, whose it is (empty for a
    login by passkey alone, whose user the answer names) and what the login was for."""

    purpose: str
    challenge: bytes
    username: str
    user_id: str
    jti: str
    expires_at: float
    via: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PasskeyRules:
    """The relying party: its id (a registrable domain, ``example.com``), its name, the
    origins whose pages may run a ceremony, and the signer of ceremony tokens."""

    rp_id: str
    rp_name: str
    origins: tuple[str, ...]
    ceremonies: TokenVerifier
    ttl: int = 300

    def __post_init__(self) -> None:
        if not self.rp_id or "/" in self.rp_id or ":" in self.rp_id:
            raise ConfigError(
                "AUTHGATE_PASSKEY_RP_ID must be the site's domain (example.com), no scheme or port"
            )
        if not self.origins:
            raise ConfigError(
                "AUTHGATE_PASSKEY_ORIGINS is empty: list the origins of the pages that use "
                "passkeys (https://example.com)"
            )

    # -- ceremony tokens ---------------------------------------------------------------

    def _token(
        self, purpose: str, challenge: bytes, user: User | None, via: Mapping[str, Any]
    ) -> str:
        claims = {
            "sub": user.username if user else "*",  # a login by passkey alone: anyone
            "uid": user.id if user else "",
            "sid": purpose,
            "ver": 0,
            "chal": _b64(challenge),
            "via": dict(via),
            "roles": [],
            "groups": [],
            "perms": [],
        }
        return self.ceremonies.issue(claims, self.ttl)

    def read(self, token: object, purposes: Sequence[str]) -> CeremonyClaims:
        """The claims of a ceremony token of one of `purposes`; `InvalidToken` for
        anything else (expired, forged, of another purpose)."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise InvalidToken("the passkey_token is missing or malformed")
        claims = self.ceremonies.verify(token)
        if claims["sid"] not in purposes:
            raise InvalidToken("this passkey_token is for another ceremony")
        via = claims.get("via")
        return CeremonyClaims(
            purpose=claims["sid"],
            challenge=_unb64(str(claims.get("chal", ""))),
            username=str(claims["sub"]) if claims.get("uid") else "",
            user_id=str(claims.get("uid", "")),
            jti=str(claims["jti"]),
            expires_at=float(claims["exp"]),
            via=dict(via) if isinstance(via, Mapping) else {},
        )

    # -- options -----------------------------------------------------------------------

    def registration(self, user: User, existing: Sequence[Passkey]) -> dict[str, Any]:
        """The options of ``navigator.credentials.create()`` adding a passkey to `user`,
        and their token: ``{"publicKey": {...}, "passkey_token": "..."}``.  The passkey
        is discoverable (a login by passkey alone needs it) and its user handle is the
        user's id (no name or address)."""
        import webauthn
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        challenge = secrets.token_bytes(32)
        options = webauthn.generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_name=user.username,
            user_id=user.id.encode(),
            user_display_name=user.display_name or user.full_name or user.username,
            challenge=challenge,
            timeout=self.ttl * 1000,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=_unb64(key.id)) for key in existing
            ],
        )
        return {
            "publicKey": json.loads(webauthn.options_to_json(options)),
            "passkey_token": self._token(REGISTER, challenge, user, {}),
        }

    def authentication(
        self,
        purpose: str,
        user: User | None,
        keys: Sequence[Passkey],
        via: Mapping[str, Any],
        challenge: bytes | None = None,
    ) -> dict[str, Any]:
        """The options of ``navigator.credentials.get()``: for `user`'s `keys` (a second
        factor, a step-up), or for any discoverable passkey of this site (`user` None:
        a login by passkey alone, which must verify the user: a PIN or a biometric)."""
        import webauthn
        from webauthn.helpers.structs import (
            PublicKeyCredentialDescriptor,
            UserVerificationRequirement,
        )

        challenge = challenge or secrets.token_bytes(32)
        options = webauthn.generate_authentication_options(
            rp_id=self.rp_id,
            challenge=challenge,
            timeout=self.ttl * 1000,
            allow_credentials=[PublicKeyCredentialDescriptor(id=_unb64(k.id)) for k in keys],
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if user is None
                else UserVerificationRequirement.PREFERRED
            ),
        )
        answer: dict[str, Any] = {"publicKey": json.loads(webauthn.options_to_json(options))}
        if purpose:
            answer["passkey_token"] = self._token(purpose, challenge, user, via)
        return answer

    # -- answers -----------------------------------------------------------------------

    def registered(self, credential: object, challenge: bytes, name: object) -> Passkey:
        """The passkey a registration answer creates, once verified against the
        challenge, this relying party and its origins; `Refused` otherwise."""
        from webauthn import verify_registration_response
        from webauthn.helpers.exceptions import WebAuthnException

        label = _name(name)
        try:
            verified = verify_registration_response(
                credential=_credential(credential),
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=list(self.origins),
            )
        except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError) as err:
            raise Refused(f"registration: {_why(err)}") from None
        transports = _transports(credential)
        return Passkey(
            id=_b64(verified.credential_id),
            public_key=_b64(verified.credential_public_key),
            sign_count=verified.sign_count,
            name=label,
            transports=transports,
            backed_up=bool(verified.credential_backed_up),
            aaguid=str(verified.aaguid),
            created_at=time.time(),
        )

    def authenticated(
        self, credential: object, challenge: bytes, key: Passkey, *, user_verified: bool
    ) -> Passkey:
        """`key` as an authentication answer leaves it (counter, backup state, last
        use), once its signature, challenge, origin, relying party and counter check;
        `Refused` otherwise.  A counter that does not move on (a cloned
        authenticator, or a replay) fails, unless the authenticator keeps none (0)."""
        from webauthn import verify_authentication_response
        from webauthn.helpers.exceptions import WebAuthnException

        try:
            verified = verify_authentication_response(
                credential=_credential(credential),
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=list(self.origins),
                credential_public_key=_unb64(key.public_key),
                credential_current_sign_count=key.sign_count,
                require_user_verification=user_verified,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError) as err:
            raise Refused(_why(err)) from None
        return Passkey(
            id=key.id,
            public_key=key.public_key,
            sign_count=verified.new_sign_count,
            name=key.name,
            transports=key.transports,
            backed_up=bool(verified.credential_backed_up),
            aaguid=key.aaguid,
            created_at=key.created_at,
            last_used_at=time.time(),
        )


def _credential(credential: object) -> dict[str, Any]:
    """A credential as the browser's ``PublicKeyCredential.toJSON()`` gives it (an object,
    or its JSON text), bounded; `ValidationError` for anything else."""
    if isinstance(credential, str):
        if len(credential) > MAX_CREDENTIAL:
            raise ValidationError("the credential is too long", field="credential")
        try:
            credential = documents.loads(credential)  # bounded nesting
        except ValueError:
            raise ValidationError("the credential is not JSON", field="credential") from None
    if not isinstance(credential, dict) or not isinstance(credential.get("response"), dict):
        raise ValidationError(
            "send the credential as PublicKeyCredential.toJSON() gives it", field="credential"
        )
    if len(json.dumps(credential)) > MAX_CREDENTIAL:
        raise ValidationError("the credential is too long", field="credential")
    return credential


def credential_id_of(credential: object) -> str:
    """The id an answer names (unchecked: which passkey it claims to be): base64url."""
    found = _credential(credential).get("id")
    if not isinstance(found, str) or not _CREDENTIAL_ID.fullmatch(found):
        raise ValidationError("the credential has no valid id", field="credential")
    return found


def user_handle_of(credential: object) -> str:
    """The user handle a login answer names (unchecked: the user id the passkey was
    created for), or "" when it names none."""
    handle = _credential(credential)["response"].get("userHandle")
    if not isinstance(handle, str) or not handle or len(handle) > 128:
        return ""
    try:
        return _unb64(handle).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _transports(credential: object) -> tuple[str, ...]:
    found = _credential(credential)["response"].get("transports")
    if not isinstance(found, list):
        return ()
    return tuple(t for t in found if isinstance(t, str) and t.isascii() and len(t) <= 16)[:8]


def _name(name: object) -> str:
    """A passkey's label: 1 to 64 characters, no control character (C0 or DEL), the
    spaces around it dropped; a blank one is "passkey"."""
    if name is None:
        return "passkey"
    if not isinstance(name, str) or not 1 <= len(name) <= _MAX_NAME:
        raise ValidationError(f"a passkey's name is 1 to {_MAX_NAME} characters", field="name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationError("a passkey's name has no control characters", field="name")
    return name.strip() or "passkey"


def _why(err: Exception) -> str:
    """A short reason for a refusal, for the audit log."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:160]
