"""Call takers' hooks and transfers: classification and dispatch reach the call record."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxbridge import dialplan_vars as dv
from pbxbridge import events as ev
from pbxbridge import tracker as tr
from tests.support import settings

S = settings.tracker()


def ref(uid: str, linkedid: str, channel: str = "", exten: str = "") -> ev.ChannelRef:
    return ev.ChannelRef(uid, linkedid, channel or f"PJSIP/trunk-{uid}", "0812000111", "", exten)


CALLER = ref("L1", "L1")
TAKER = ref("A1", "L1", "PJSIP/1001-0000000a")


def answered_call() -> list[ev.Event]:
    return [
        ev.ChannelCreated(100, CALLER),
        ev.Offered(100, CALLER, "112"),
        ev.QueueJoined(102, CALLER, "q112"),
        ev.ChannelCreated(102, TAKER),
        ev.AgentRinging(102, CALLER, "q112", "Taker 1001", "A1"),
        ev.AgentAnswered(104, CALLER, "q112", "Taker 1001", "A1", TAKER.channel),
    ]


def run(t: tr.Tracker, events: list[ev.Event]) -> list[tr.Effect]:
    out: list[tr.Effect] = []
    for e in events:
        out += t.handle(e)
    return out


def updates(effects: list[tr.Effect]) -> list[tr.CallUpdated]:
    return [e for e in effects if isinstance(e, tr.CallUpdated)]


def test_classification_during_the_call_reaches_the_record() -> None:
    """A classify hook on the call taker's channel (same Linkedid) sets the category."""
    t = tr.Tracker(S)
    effects = run(
        t,
        [*answered_call(), ev.Classified(110, TAKER, "prank"), ev.ChannelHungUp(120, CALLER, "16")],
    )
    [update] = updates(effects)
    assert (update.what, update.record.category) == ("category", "prank")
    [end] = [e for e in effects if isinstance(e, tr.CallEnded)]
    assert end.record.category == "prank"


def test_classification_after_the_call_applies_to_that_phones_last_call() -> None:
    """A classify hook from the call taker's own phone after the call updates its last call."""
    t = tr.Tracker(S)
    run(t, [*answered_call(), ev.ChannelHungUp(120, CALLER, "16")])
    later = ref("P9", "P9", "PJSIP/1001-0000000f")  # a new call from the same phone
    [update] = updates(run(t, [ev.Classified(125, later, "ghost")]))
    assert (update.record.call_id, update.record.category, update.record.outcome) == (
        "pbx:L1",
        "ghost",
        "answered",
    )


@pytest.mark.parametrize("category", ["", "banana", "prank\r\nEvent: X"])
def test_unknown_category_is_an_anomaly_and_changes_nothing(category: str) -> None:
    """A category outside the configured set is reported, never recorded."""
    t = tr.Tracker(S)
    effects = run(t, [*answered_call(), ev.Classified(110, TAKER, category)])
    assert updates(effects) == []
    assert [e.kind for e in effects if isinstance(e, tr.Anomaly)] == ["unknown_category"]


def test_blind_transfer_to_an_agency_number_is_a_dispatch() -> None:
    """A successful BlindTransfer of the caller to a mapped number records the agency."""
    t = tr.Tracker(S)
    effects = run(
        t,
        [
            *answered_call(),
            ev.BlindTransferred(111, "L1", "113", True),
            ev.ChannelHungUp(130, CALLER, "16"),
        ],
    )
    [end] = [e for e in effects if isinstance(e, tr.CallEnded)]
    assert end.record.dispatched_to == (("fire", 111),)


def test_failed_or_unmapped_transfers_are_not_dispatches() -> None:
    """Only a successful transfer to a configured agency number counts."""
    t = tr.Tracker(S)
    effects = run(
        t,
        [
            *answered_call(),
            ev.BlindTransferred(111, "L1", "113", False),
            ev.BlindTransferred(112, "L1", "2000", True),
        ],
    )
    assert updates(effects) == []


def test_attended_transfer_uses_the_consulted_agency() -> None:
    """The consultation leg's exten names the agency; the transfer's success records it."""
    t = tr.Tracker(S)
    consult = ref("C1", "L1", "Local/110@agencies-00000003;1", exten="110")
    effects = run(
        t,
        [
            *answered_call(),
            ev.ChannelCreated(108, consult),
            ev.AttendedTransferred(115, "L1", True),
        ],
    )
    [update] = updates(effects)
    assert update.record.dispatched_to == (("police", 115),)


def test_dispatch_hook_accepts_agency_names_and_numbers() -> None:
    """Gosub(pbxbridge,dispatch,1(AGENCY)) takes an agency name or its number."""
    t = tr.Tracker(S)
    effects = run(
        t,
        [
            *answered_call(),
            ev.DispatchHooked(109, TAKER, "ambulance"),
            ev.DispatchHooked(110, TAKER, "110"),
            ev.DispatchHooked(111, TAKER, "x"),
        ],
    )
    assert [u.record.dispatched_to[-1][0] for u in updates(effects)] == ["ambulance", "police"]
    assert [e.kind for e in effects if isinstance(e, tr.Anomaly)] == ["unknown_agency"]


def test_hooks_name_only_what_dialplan_vars_defines() -> None:
    """dialplan/pbxbridge.conf and pbxbridge/dialplan_vars.py agree on every name."""
    text = (Path(__file__).resolve().parents[2] / "dialplan" / "pbxbridge.conf").read_text()
    for name in (
        dv.USEREVENT_OFFERED,
        dv.USEREVENT_CLASSIFY,
        dv.USEREVENT_DISPATCH,
        dv.USEREVENT_CALLBACK,
        dv.VAR_CALLBACK_NUMBER,
        dv.VAR_CALLBACK_CALL_ID,
        dv.VAR_CALLBACK_STATUS,
        dv.AGI_SCRIPT,
        f"[{dv.CONTEXT}]",
    ):
        assert name in text, name
    for header in (
        dv.HEADER_SERVICE,
        dv.HEADER_CATEGORY,
        dv.HEADER_AGENCY,
        dv.HEADER_CALL_ID,
        dv.HEADER_STATUS,
    ):
        assert f"{header}: " in text, header
