"""``pbxbridge-agi``: the process-AGI script behind the call takers' callback feature.

    exten => *112,1,Gosub(pbxbridge,callback,1(PJSIP/,@trunk))   ; see dialplan/

Runs on the call taker's channel, never on a caller's. It claims the oldest pending
callback from pbxbridge's local API, sets PBXBRIDGE_CALLBACK_NUMBER / _CALL_ID /
_STATUS and exits; the dialplan dials. Hard 2 s limit: when pbxbridge is stopped,
hung or answers nonsense, STATUS says so and the call taker dials by hand.

Built on pyst2's process-AGI class only (its fastagi module does not import on
Python 3). pyst2 sends values unquoted, so every value is validated against the
patterns in :mod:`pbxbridge.dialplan_vars` before it is set. It imports nothing else
from pbxbridge, so it can run from any Python that has pyst2 and this package.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from asterisk.agi import AGI  # type: ignore[import-untyped]

from pbxbridge import dialplan_vars as dv
from pbxbridge import local_api

DEFAULT_API = local_api.DEFAULT_ADDRESS
API_VARIABLE = "PBXBRIDGE_API"  # a dialplan global may point the script elsewhere
HARD_LIMIT_SECONDS = 2  # the whole run: reading the AGI environment to the last variable
HTTP_TIMEOUT_SECONDS = 1.0
SETTING_SECONDS = 0.4

# PBXBRIDGE_CALLBACK_STATUS values the dialplan branches on.
OK, EMPTY, UNAVAILABLE, INVALID = "OK", "EMPTY", "UNAVAILABLE", "INVALID"


class _OutOfTime(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _OutOfTime


def claim(api: str, who: str) -> tuple[str, str, str]:
    """(status, number, call id) from POST /v1/callbacks/claim; validated."""
    body = json.dumps({"claimed_by": who}).encode()
    try:
        status, raw = local_api.request(
            api, "POST", "/v1/callbacks/claim", body=body, timeout=HTTP_TIMEOUT_SECONDS
        )
        if status == 204:
            return EMPTY, "", ""
        if status != 200:
            return UNAVAILABLE, "", ""
        data: Any = json.loads(raw)
    except (OSError, http.client.HTTPException, ValueError):
        return UNAVAILABLE, "", ""
    number = data.get("number") if isinstance(data, dict) else None
    call_id = data.get("call_id") if isinstance(data, dict) else None
    if not (
        isinstance(number, str)
        and isinstance(call_id, str)
        and dv.DIAL_NUMBER.fullmatch(number)
        and dv.CALL_ID.fullmatch(call_id)
    ):
        return INVALID, "", ""
    return OK, number, call_id


def phone_of(env: dict[str, str]) -> str:
    """The call taker's phone, which a claim's lease and rate limit belong to:
    ``PJSIP/1001-0000002a`` -> ``PJSIP/1001``. A Local channel has no endpoint: its
    caller id names the phone (``Local/*112@takers/1001``), else the channel itself."""
    channel = env.get("agi_channel", "unknown").split(";", 1)[0]
    device = dv.device_of(channel)
    if not device.startswith("Local/"):
        return device
    number = env.get("agi_callerid", "")
    return f"{device}/{number}" if number.isdigit() else channel


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["callback"]:
        print("usage: pbxbridge-agi callback  (run by Asterisk's AGI())", file=sys.stderr)
        return 2
    # One deadline for the whole run, armed before pyst2 reads the AGI environment: the
    # call taker waits on this script, so it never takes longer than HARD_LIMIT_SECONDS.
    deadline = time.monotonic() + HARD_LIMIT_SECONDS
    signal.signal(signal.SIGALRM, _alarm)
    # Most of the budget for reading the environment and claiming; what is left is for
    # telling the dialplan, which the call taker needs even when the claim timed out.
    signal.setitimer(signal.ITIMER_REAL, HARD_LIMIT_SECONDS - SETTING_SECONDS)
    try:
        # pyst2 echoes the AGI environment (caller ids included) to stderr, which
        # Asterisk logs: keep it quiet.
        agi = AGI(stderr=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
        status, number, call_id = UNAVAILABLE, "", ""
        try:
            api = agi.get_variable(API_VARIABLE) or DEFAULT_API
            who = phone_of(agi.env)
            status, number, call_id = claim(api, who)
        except _OutOfTime:
            status, number, call_id = UNAVAILABLE, "", ""
        signal.setitimer(signal.ITIMER_REAL, max(0.01, deadline - time.monotonic()))
        agi.set_variable(dv.VAR_CALLBACK_NUMBER, number)
        agi.set_variable(dv.VAR_CALLBACK_CALL_ID, call_id)
        agi.set_variable(dv.VAR_CALLBACK_STATUS, status)
    except _OutOfTime:
        return 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
