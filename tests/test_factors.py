"""Second factors without I/O: TOTP codes (accepted once, within a step of the clock),
sealed secrets, recovery codes."""

from __future__ import annotations

import json

import pyotp
import pytest

from authgate.factors import (
    STEP,
    Factors,
    SecretBox,
    TotpFactor,
    new_recovery_codes,
    new_totp_secret,
    provisioning_uri,
    qr_svg,
    recovery_hash,
)

KEY = b"k" * 32
OLD_KEY = b"o" * 32
NOW = 1_800_000_000.0


def _factor(secret: str, box: SecretBox, **kw: object) -> TotpFactor:
    return TotpFactor(sealed=box.seal(secret, "user-1"), confirmed=True, **kw)  # type: ignore[arg-type]


def test_a_code_of_the_current_step_or_a_neighbour_is_accepted_once() -> None:
    box = SecretBox([KEY])
    secret = new_totp_secret()
    factor = _factor(secret, box)
    totp = pyotp.TOTP(secret)
    step = int(NOW // STEP)
    assert factor.verify(box, "user-1", totp.at(NOW), NOW) == step
    assert factor.verify(box, "user-1", totp.at(NOW - STEP), NOW) == step - 1
    assert factor.verify(box, "user-1", totp.at(NOW + STEP), NOW) == step + 1
    assert factor.verify(box, "user-1", totp.at(NOW - 2 * STEP), NOW) == 0
    used = TotpFactor(factor.sealed, True, last_step=step)
    assert used.verify(box, "user-1", totp.at(NOW), NOW) == 0  # replayed
    assert used.verify(box, "user-1", totp.at(NOW - STEP), NOW) == 0  # older than the last
    assert used.verify(box, "user-1", totp.at(NOW + STEP), NOW) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "１２３４５６", None, 123456])
def test_malformed_codes_are_refused(code: object) -> None:
    box = SecretBox([KEY])
    assert _factor(new_totp_secret(), box).verify(box, "user-1", code, NOW) == 0


def test_a_sealed_secret_opens_only_with_the_ring_and_for_its_user() -> None:
    secret = new_totp_secret()
    sealed = SecretBox([OLD_KEY]).seal(secret, "user-1")
    assert secret not in sealed
    assert SecretBox([KEY, OLD_KEY]).open(sealed, "user-1") == secret  # after a rotation
    with pytest.raises(ValueError, match="no key"):
        SecretBox([KEY]).open(sealed, "user-1")
    with pytest.raises(ValueError, match="no key"):
        SecretBox([OLD_KEY]).open(sealed, "user-2")  # copied onto another user


def test_recovery_codes_work_once_and_ignore_spelling() -> None:
    codes = new_recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    factors = Factors().with_recovery(codes)
    assert codes[0] not in factors.dump()
    after = factors.spend_recovery(codes[0].upper().replace("-", " "))
    assert after is not None and len(after.recovery) == 9
    assert after.spend_recovery(codes[0]) is None
    assert factors.spend_recovery("not-a-code-here") is None
    assert factors.spend_recovery(None) is None
    regenerated = after.with_recovery(new_recovery_codes())
    assert regenerated.spend_recovery(codes[1]) is None  # the old set is void


def test_factors_round_trip_and_old_records_have_none() -> None:
    box = SecretBox([KEY])
    factors = Factors(totp=_factor(new_totp_secret(), box, last_step=7)).with_recovery(["a" * 12])
    again = Factors.load(factors.dump())
    assert again == factors and again.active
    assert Factors.load("") == Factors() and not Factors().active
    assert json.loads(factors.dump())["totp"]["last_step"] == 7


def test_the_enrolment_uri_and_qr_code() -> None:
    uri = provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "alice", "Example")
    assert uri.startswith("otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    svg = qr_svg(uri)
    assert svg.startswith("<svg") and "</svg>" in svg
    assert recovery_hash("ABCD-efgh-jkmn") == recovery_hash("abcdefghjkmn")
