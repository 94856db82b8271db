"""The contract between the dialplan (dialplan/pbxbridge.conf) and the code: one place.

Every name a hook writes and pbxbridge reads is defined here; a test checks that the
dialplan file uses exactly these names.
"""

from __future__ import annotations

import re

CONTEXT = "pbxbridge"

# UserEvent names and the one header each carries.
USEREVENT_OFFERED = "PbxbridgeOffered"
USEREVENT_CLASSIFY = "PbxbridgeClassify"
USEREVENT_DISPATCH = "PbxbridgeDispatch"
USEREVENT_CALLBACK = "PbxbridgeCallback"
HEADER_SERVICE = "Service"
HEADER_CATEGORY = "Category"
HEADER_AGENCY = "Agency"
HEADER_CALL_ID = "CallId"
HEADER_STATUS = "Status"

# Channel variables the callback AGI script sets for the dialplan.
VAR_CALLBACK_NUMBER = "PBXBRIDGE_CALLBACK_NUMBER"
VAR_CALLBACK_CALL_ID = "PBXBRIDGE_CALLBACK_CALL_ID"
VAR_CALLBACK_STATUS = "PBXBRIDGE_CALLBACK_STATUS"
AGI_SCRIPT = "pbxbridge-agi"

# What a hook value may contain: tokens the dialplan filters to this set, so a value
# can never be invalid UTF-8 (UserEvent would hang up the call) or carry CR/LF.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Call ids are "<pbx>:<linkedid>"; linkedids are Asterisk-generated ASCII.
CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,160}")
# A number a callback may dial: digits, with an optional leading +.
DIAL_NUMBER = re.compile(r"\+?[0-9]{2,32}")

DEFAULT_CATEGORIES = ("emergency", "information", "prank", "ghost", "silent", "misdial")
DEFAULT_AGENCIES = {
    "110": "police",
    "113": "fire",
    "115": "search_and_rescue",
    "118": "ambulance",
    "119": "ambulance",
}


def device_of(channel: str) -> str:
    """The phone behind a channel name: ``PJSIP/1001-0000001a`` -> ``PJSIP/1001``,
    ``Local/1001@agents-00000001;2`` -> ``Local/1001@agents``."""
    name = channel.split(";", 1)[0]
    return name.rsplit("-", 1)[0] if "-" in name else name
