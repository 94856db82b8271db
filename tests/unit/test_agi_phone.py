"""The callback claim names the call taker's phone: the lease and the rate limit are
per phone, whichever channel of it pressed the feature code."""

from __future__ import annotations

import pytest

from pbxbridge.agi import phone_of


@pytest.mark.parametrize(
    ("channel", "callerid", "phone"),
    [
        ("PJSIP/1001-0000002a", "1001", "PJSIP/1001"),
        ("PJSIP/desk-7-00000003", "unknown", "PJSIP/desk-7"),
        ("SIP/trunk-in-000001", "", "SIP/trunk-in"),
        ("Local/*112@lab-takers-00000002;2", "1002", "Local/*112@lab-takers/1002"),
        ("Local/*112@lab-takers-00000003;2", "unknown", "Local/*112@lab-takers-00000003"),
    ],
)
def test_the_claimant_is_the_phone(channel: str, callerid: str, phone: str) -> None:
    """Two presses on one phone are one claimant; a Local channel has no endpoint, so its
    caller id (digits) names the phone, else the channel itself."""
    assert phone_of({"agi_channel": channel, "agi_callerid": callerid}) == phone
