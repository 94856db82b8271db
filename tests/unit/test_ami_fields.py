"""Lazy field reading (Message.get, Message.pick with Keys) answers exactly what the full
parse answers: on every recorded event pbxbridge translates, on odd hand-made lines, on
random messages; plus the translator's malformed-line count and the session's framing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pbxbridge import ami_translate as at
from pbxbridge import dialplan_vars as dv
from pbxbridge import events as ev
from pbxbridge import replay
from pbxbridge.ami_parser import (
    BANNER_PREFIX,
    AmiStreamParser,
    Keys,
    Message,
    parse,
    split_banner,
)

TESTS = Path(__file__).resolve().parents[1]
# pbxbridge's event mask (Events: call,agent,user,system) and everything (Events: on).
RECORDINGS = sorted(
    [*(TESTS / "transcripts").glob("*.ami"), *(TESTS / "benchmarks" / "streams").glob("*.ami")]
)
RECORDING_IDS = [f"{p.parent.name}/{p.stem}" for p in RECORDINGS]

# The translations that read Asterisk's channel snapshot with one pick() (ami_translate.py).
CHANNEL_EVENTS = frozenset(
    {
        "Newchannel",
        "HangupRequest",
        "SoftHangupRequest",
        "Hangup",
        "UserEvent",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "AgentCalled",
        "AgentRingNoAnswer",
        "AgentConnect",
    }
)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def recorded_body(path: Path) -> bytes:
    """The recorded stream after its '#' header and its banner line."""
    banner, rest = split_banner(replay.strip_header(path.read_bytes()))
    assert banner is not None and banner.startswith(BANNER_PREFIX), path
    return rest


def session(body: bytes, wanted: frozenset[str] | None = at.WANTED_EVENTS) -> list[Message]:
    """What the live client's parser hands on, reading ``body`` in 4 KiB pieces."""
    parser = AmiStreamParser(expect_banner=False, wanted=wanted)
    messages = [m for piece in replay.chunks(body, 4096) for m in parser.feed(piece)]
    assert parser.buffered == 0
    return messages


def wire(raw: bytes) -> Message:
    """One message as a CRLF session reads it (lazy); ``raw`` without its terminator."""
    (msg,), rest = parse(raw + b"\r\n\r\n", crlf=True)
    assert rest == b""
    return msg


def eager(msg: Message) -> Message:
    """A fully parsed copy: every later read of it goes through the parsed index."""
    return Message(msg.fields, msg.decode_error, msg.malformed_lines)


@pytest.mark.parametrize("path", RECORDINGS, ids=RECORDING_IDS)
def test_recorded_events_translate_lazily_to_what_the_full_parse_gives(path: Path) -> None:
    """Every recorded event pbxbridge translates gives the same typed event (and the same
    Timestamp verdict) read lazily as fully parsed, and a channel event is never parsed
    in full: Asterisk 22 writes the picked headers in the order the Keys declare them
    (a failure here after an Asterisk upgrade names the event and its wire order)."""
    body = recorded_body(path)
    lazy = [m for m in session(body) if m.event in at.TRANSLATORS]
    # A separate parse of the same bytes, unfiltered: the copies share nothing with `lazy`.
    full = [eager(m) for m in parse(body)[0] if m.event in at.TRANSLATORS]
    assert [m.event for m in lazy] == [m.event for m in full]
    assert lazy, "no translated event in this recording"
    for i, (msg, copy) in enumerate(zip(lazy, full, strict=True)):
        name = msg.event
        assert not msg.parsed, f"#{i} {name}: parsed before translation"
        assert copy.parsed
        got = at.translate(msg, 0.0)
        assert got == at.translate(copy, 0.0), f"#{i} {name}: lazy and full translations differ"
        if name in CHANNEL_EVENTS:
            assert got[0] is not None or name == "UserEvent", f"#{i} {name}: not translated"
            assert not msg.parsed, (
                f"#{i} {name} was parsed in full: its picked headers are not in the declared "
                f"Keys order any more; wire order: {[k for k, _ in copy.fields]}"
            )


def test_the_recordings_hold_every_channel_event_and_hook() -> None:
    """The recordings exercise every channel event translation and the recorded hooks,
    so the test above proves the declared Keys order for each of them."""
    seen_events: set[str] = set()
    seen_types: set[type] = set()
    for path in RECORDINGS:
        for msg in session(recorded_body(path)):
            if msg.event in at.TRANSLATORS:
                seen_events.add(msg.event or "")
                event, _ = at.translate(msg, 0.0)
                seen_types.add(type(event))
    assert set(at.TRANSLATORS) >= CHANNEL_EVENTS
    assert seen_events >= CHANNEL_EVENTS, sorted(CHANNEL_EVENTS - seen_events)
    assert {ev.Offered, ev.Classified, ev.AgentNoAnswer, ev.AgentAnswered} <= seen_types


def recorded_classify() -> bytes:
    """The recorded PbxbridgeClassify UserEvent, as Asterisk 22 wrote it."""
    body = recorded_body(TESTS / "transcripts" / "classified_during_call.ami")
    (raw,) = [m for m in body.split(b"\r\n\r\n") if b"\r\nUserEvent: PbxbridgeClassify\r\n" in m]
    return raw


# What the recorded hook says about its channel (classified_during_call.ami).
HOOK_AT = 1795972026.321856
HOOK_REF = ev.ChannelRef(
    "lab-1795972023.2", "labrec.1", "Local/1001@lab-agents-00000001;1", "081257970185",
    "Lab Caller 1", "classify",
)  # fmt: skip


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            f"UserEvent: {dv.USEREVENT_CLASSIFY}\r\n{dv.HEADER_CATEGORY}: prank",
            ev.Classified(HOOK_AT, HOOK_REF, "prank"),
        ),
        (
            f"UserEvent: {dv.USEREVENT_OFFERED}\r\n{dv.HEADER_SERVICE}: 112",
            ev.Offered(HOOK_AT, HOOK_REF, "112"),
        ),
        (
            f"UserEvent: {dv.USEREVENT_DISPATCH}\r\n{dv.HEADER_AGENCY}: fire",
            ev.DispatchHooked(HOOK_AT, HOOK_REF, "fire"),
        ),
        (
            f"UserEvent: {dv.USEREVENT_CALLBACK}\r\n{dv.HEADER_CALL_ID}: lab:1\r\n"
            f"{dv.HEADER_STATUS}: ANSWER",
            ev.CallbackDialed(HOOK_AT, HOOK_REF, "lab:1", "ANSWER"),
        ),
    ],
    ids=["classify", "offered", "dispatch", "callback"],
)
def test_hook_headers_are_read_lazily(tail: str, expected: ev.Event) -> None:
    """Each dialplan hook, in the recorded UserEvent's shape, translates lazily to this
    event, what the full parse gives, reading its own headers with get() without a
    full parse."""
    head, _, _ = recorded_classify().partition(b"\r\nUserEvent: ")
    raw = head + b"\r\n" + tail.encode()
    msg = wire(raw)
    assert at.translate(msg, 0.0) == (expected, True)
    assert not msg.parsed
    assert at.translate(eager(wire(raw)), 0.0) == (expected, True)


def test_hook_without_its_header_falls_back_to_the_full_parse() -> None:
    """A hook missing its header is parsed in full by the get() miss and translates,
    like the full parse, with an empty value."""
    head, _, _ = recorded_classify().partition(b"\r\nCategory: ")
    msg = wire(head)
    got = at.translate(msg, 0.0)
    assert got == at.translate(eager(wire(head)), 0.0)
    assert isinstance(got[0], ev.Classified) and got[0].category == ""
    assert msg.parsed


# Hand-made odd messages, read with these Keys (Asterisk's order: Channel, Uniqueid, Cause).
NAMES = ("Channel", "Uniqueid", "Cause")
PICKED = Keys(*NAMES)
OTHER = ("Event", "Missing", "uniqueid", "CAUSE", "DestUniqueid")


H = b"Event: Hangup\r\n"
P = pytest.param


@pytest.mark.parametrize(
    ("raw", "expected", "malformed", "stays_lazy"),
    [
        P(
            H + b"Channel: P/1\r\nUniqueid: 1.2\r\nCause: 16",
            ["P/1", "1.2", "16"],
            0,
            True,
            id="asterisk-order",
        ),
        P(H + b"Channel: P/1\r\nCause: 16", ["P/1", "", "16"], 0, False, id="key-missing"),
        # The pattern fails: the message is parsed in full (its odd lines counted).
        P(
            H + b"Cause: 16\r\nChannel: P/1\r\nUniqueid: 1.2",
            ["P/1", "1.2", "16"],
            0,
            False,
            id="out-of-order",
        ),
        P(
            H + b"Channel: P/1\r\nUniqueid:1.2\r\nCause: 16",
            ["P/1", "1.2", "16"],
            0,
            False,
            id="no-space",
        ),
        P(
            H + b"Channel: P/1\r\nUniqueid:\r\nCause: 16",
            ["P/1", "", "16"],
            0,
            False,
            id="no-space-empty",
        ),
        P(
            H + b"Channel: P/1\r\nuniqueid: 1.2\r\nCause: 16",
            ["P/1", "1.2", "16"],
            0,
            False,
            id="other-case",
        ),
        P(
            H + b"Channel: P/1\r\nUniqueid: 1.2\r\nUniqueid: 9.9\r\nCause: 16\r\nCause: 17",
            ["P/1", "1.2", "16"],
            0,
            True,
            id="duplicates-first-wins",
        ),
        P(
            H + b"Channel: Local/a: b\r\nUniqueid: 1.2\r\nCause: 1: 6",
            ["Local/a: b", "1.2", "1: 6"],
            0,
            True,
            id="colon-space-in-value",
        ),
        P(
            H + b"Channel: P/1\r\ngarbage line\r\nUniqueid: 1.2\r\nCause: 16",
            ["P/1", "1.2", "16"],
            1,
            True,
            id="line-without-colon",
        ),
        P(
            H + b"Channel: P/1\r\ngarbage line\r\nUniqueid:1.2\r\nCause: 16",
            ["P/1", "1.2", "16"],
            1,
            False,
            id="line-without-colon-and-no-space",
        ),
        P(
            H + b"Channel: two\nlines\r\nUniqueid: 1.2\r\nCause: 16\n",
            ["two\nlines", "1.2", "16\n"],
            0,
            True,
            id="bare-lf-in-values",
        ),
        P(
            H + b"Channel: M\xffller\r\nUniqueid: 1.2\r\nCause: 16",
            ["M\ufffdller", "1.2", "16"],
            0,
            True,
            id="invalid-utf8",
        ),
        P(
            H + b"Channel: P/1\r\nUniqueid: 1.2\r\nCause: ",
            ["P/1", "1.2", ""],
            0,
            True,
            id="empty-last-value",
        ),
        # A stray extra CRLF before the terminator leaves the text ending in CRLF.
        P(
            H + b"Channel: P/1\r\nUniqueid: 1.2\r\nCause: 16\r\n",
            ["P/1", "1.2", "16"],
            0,
            True,
            id="last-line-with-extra-crlf",
        ),
    ],
)
def test_odd_lines_pick_and_get_like_the_full_parse(
    raw: bytes, expected: list[str], malformed: int, stays_lazy: bool
) -> None:
    """pick() and get() on a lazily read message answer these values, exactly what the
    full parse answers; lines without a colon are counted either way, an invalid byte
    marks the message. pick() parses in full whenever its pattern does not match (a key
    missing, out of Asterisk's order, not written "Key: ", in another case)."""
    full = eager(wire(raw))
    assert [full.get(n, "") for n in NAMES] == expected
    msg = wire(raw)
    assert list(msg.pick(PICKED)) == expected
    assert msg.parsed is not stays_lazy
    for name in (*NAMES, *OTHER):
        assert wire(raw).get(name) == full.get(name), name
    fresh = wire(raw)
    assert fresh.malformed_lines == full.malformed_lines == malformed
    assert fresh.decode_error is full.decode_error is (b"\xff" in raw)


def test_text_without_a_final_crlf_reads_its_last_line() -> None:
    """A lazy message's text ends without CRLF (the terminator is cut off): get() and
    pick() read the last line to its end, as the full parse does."""
    text = "Event: Hangup\r\nChannel: P/1\r\nUniqueid: 1.2\r\nCause: 16"
    msg = Message._lazy(text, False)
    assert list(msg.pick(PICKED)) == ["P/1", "1.2", "16"]
    assert Message._lazy(text, False).get("Cause") == "16"
    assert not msg.parsed
    assert msg == Message(
        (("Event", "Hangup"), ("Channel", "P/1"), ("Uniqueid", "1.2"), ("Cause", "16"))
    )


# Production bugs found while writing this file: each test states the full parse's answer.


def test_pick_takes_the_first_of_a_key_repeated_before_the_previous_key() -> None:
    """A key repeated on both sides of the key declared before it: the first value wins,
    as in the full parse (the pattern may not skip a line starting with a later key)."""
    raw = b"Event: Hangup\r\nUniqueid: 1.1\r\nChannel: P/1\r\nUniqueid: 2.2"
    assert eager(wire(raw)).get("Uniqueid") == "1.1"
    assert wire(raw).get("Uniqueid") == "1.1"
    assert list(wire(raw).pick(Keys("Channel", "Uniqueid"))) == ["P/1", "1.1"]


def test_get_takes_the_first_value_even_when_its_line_lacks_the_space() -> None:
    """A "Key:v" line then "Key: w": first wins and no-space lines are accepted, so v,
    from get() (its lazy find stops at the first "Key:" line) and from pick()."""
    raw = b"Event: Hangup\r\nUniqueid:1.1\r\nUniqueid: 2.2"
    assert eager(wire(raw)).get("Uniqueid") == "1.1"
    assert wire(raw).get("Uniqueid") == "1.1"
    assert list(wire(raw).pick(Keys("Uniqueid"))) == ["1.1"]


def test_pick_keeps_a_bare_cr_in_the_last_picked_value() -> None:
    """A bare CR inside the last picked value is kept, as by get() and the full parse
    (the pattern's last value must end at a CRLF or the end)."""
    raw = b"Event: QueueCallerJoin\r\nChannel: P/1\r\nQueue: a\rb"
    assert eager(wire(raw)).get("Queue") == "a\rb"
    assert wire(raw).get("Queue") == "a\rb"
    assert list(wire(raw).pick(Keys("Channel", "Queue"))) == ["P/1", "a\rb"]


# The picked names two times in three, so duplicates on both sides of each other are common.
line_keys = (
    st.sampled_from(NAMES)
    | st.sampled_from(NAMES)
    | st.sampled_from(["Event", "uniqueid", "CAUSE", "DestUniqueid", "Chan", "X"])
)
line_values = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n", max_codepoint=0x24F
    ),
    max_size=8,
) | st.sampled_from(["", "a: b", " lead", "Cause: 1", "Müller"])
lines = st.lists(
    st.tuples(line_keys, st.sampled_from([": ", ": ", ": ", ":"]), line_values).map("".join)
    | st.sampled_from(["garbage", "no colon here"]),
    max_size=10,
)


@settings(max_examples=400, deadline=None)
@given(lines)
@example(["Uniqueid: 1.1", "Channel: P/1", "Uniqueid: 2.2"])
@example(["Uniqueid:1.1", "Uniqueid: 2.2"])
def test_random_messages_pick_and_get_like_the_full_parse(body: list[str]) -> None:
    """Any message of known and unknown keys, in any order, repeated, with or without
    the space, with garbage lines: pick() equals the full parse's get() of each name,
    and get() of every key equals the full parse's, each on a fresh lazy read."""
    raw = "\r\n".join(["Event: Hangup", *body]).encode()
    full = eager(wire(raw))
    assert list(wire(raw).pick(PICKED)) == [full.get(n, "") for n in NAMES]
    for name in (*NAMES, *OTHER):
        assert wire(raw).get(name) == full.get(name), name


def hangup(uniqueid_line: bytes, extra: bytes = b"") -> bytes:
    """A Hangup as Asterisk 22 writes it (recorded), with this Uniqueid line and ``extra``
    lines before Linkedid."""
    return (
        b"Event: Hangup\r\nPrivilege: call,all\r\nTimestamp: 1795966261.056067\r\n"
        b"SystemName: lab\r\nChannel: Local/1001@lab-agents-00000001;1\r\nChannelState: 6\r\n"
        b"ChannelStateDesc: Up\r\nCallerIDNum: 081292229283\r\nCallerIDName: Lab Caller 1\r\n"
        b"ConnectedLineNum: 081292229283\r\nConnectedLineName: Lab Caller 1\r\nLanguage: en\r\n"
        b"AccountCode: \r\nContext: lab-agents\r\nExten: 112\r\nPriority: 1\r\n"
        + uniqueid_line
        + b"\r\n"
        + extra
        + b"Linkedid: labrec.1\r\nCause: 16\r\nCause-txt: Normal Clearing"
    )


def test_translator_counts_malformed_lines_of_an_event_parsed_in_full() -> None:
    """A Hangup whose Uniqueid line lacks the space is parsed in full by translation;
    the translator counts its line without a colon, and the event keeps its Uniqueid."""
    msg = wire(hangup(b"Uniqueid:1.2", b"garbage line\r\n"))
    assert not msg.parsed
    warnings: list[tuple[str, str]] = []
    translator = at.Translator(warn=lambda what, name: warnings.append((what, name)))
    event = translator.event(msg, 1795966261.5)
    assert msg.parsed
    assert translator.stats.malformed_lines == 1
    assert (translator.stats.events, translator.stats.untranslated) == (1, 0)
    assert warnings == [("ami_malformed_lines", "Hangup")]
    assert isinstance(event, ev.ChannelHungUp)
    assert (event.ref.uniqueid, event.ref.linkedid, event.cause) == ("1.2", "labrec.1", "16")


FRAMING_STREAM = (
    BANNER
    + b"Response: Success\r\nActionID: lab-0\r\nMessage: Authentication accepted\r\n\r\n"
    + b"Event: Newchannel\r\nPrivilege: call,all\r\nTimestamp: 1.5\r\nChannel: P/1-1\r\n"
    + b"CallerIDNum: 1001\r\nCallerIDName: one\nline\r\nExten: 112\r\n"
    + b"Uniqueid: 1.1\r\nLinkedid: 1.1\r\n\r\n"
)


@pytest.mark.parametrize("wanted", [None, at.WANTED_EVENTS], ids=["all", "selected"])
def test_crlf_session_keeps_a_bare_lf_inside_a_value(wanted: frozenset[str] | None) -> None:
    """A CRLF session (decided at its first line end) reads a bare LF inside a line as
    part of the value, however the stream is cut into reads."""
    expected = (
        ("Event", "Newchannel"),
        ("Privilege", "call,all"),
        ("Timestamp", "1.5"),
        ("Channel", "P/1-1"),
        ("CallerIDNum", "1001"),
        ("CallerIDName", "one\nline"),
        ("Exten", "112"),
        ("Uniqueid", "1.1"),
        ("Linkedid", "1.1"),
    )
    for cut in range(len(FRAMING_STREAM) + 1):
        parser = AmiStreamParser(wanted=wanted)
        got = parser.feed(FRAMING_STREAM[:cut]) + parser.feed(FRAMING_STREAM[cut:])
        assert [m.response for m in got] == ["Success", None], cut
        event = got[1]
        assert event.get("CallerIDName") == "one\nline", cut
        assert at.channel_ref(event).caller_name == "one\nline", cut
        assert event.fields == expected, cut
        assert parser.buffered == 0


MIXED_STREAM = (
    BANNER
    + b"Response: Success\r\nActionID: lab-0\r\nMessage: Authentication accepted\r\n\r\n"
    + b"Event: Newstate\nChannel: SIP/a-1\n\n"
    + b"Event: Hangup\r\nTimestamp: 5.0\r\nUniqueid: u1\r\nLinkedid: u1\r\n\r\n"
)


@pytest.mark.parametrize("wanted", [None, at.WANTED_EVENTS], ids=["all", "selected"])
def test_a_bare_lf_message_in_a_crlf_session_does_not_swallow_the_next(
    wanted: frozenset[str] | None,
) -> None:
    """A message ended by bare LFs inside a CRLF session (a proxy, a hand-written peer)
    is framed on its own: the Hangup after it still arrives, at every cut into reads."""
    for cut in range(len(MIXED_STREAM) + 1):
        parser = AmiStreamParser(wanted=wanted)
        got = parser.feed(MIXED_STREAM[:cut]) + parser.feed(MIXED_STREAM[cut:])
        events = [m.event for m in got if m.event is not None]
        assert events == (["Hangup"] if wanted else ["Newstate", "Hangup"]), cut
        assert got[-1].get("Uniqueid") == "u1", cut
        assert parser.skipped == (1 if wanted else 0), cut
        assert parser.buffered == 0


@pytest.mark.parametrize("path", RECORDINGS, ids=RECORDING_IDS)
def test_bare_lf_stream_parses_like_its_crlf_twin(path: Path) -> None:
    """A recorded stream rewritten with bare LF line ends (banner included) gives the
    same messages, field for field, as the CRLF original, read in odd-sized pieces."""
    crlf = BANNER + recorded_body(path)
    assert b"\n" not in crlf.replace(b"\r\n", b"")
    lf = crlf.replace(b"\r\n", b"\n")

    def read(data: bytes) -> list[Message]:
        parser = AmiStreamParser()
        got = [m for piece in replay.chunks(data, 997) for m in parser.feed(piece)]
        assert parser.banner == BANNER.decode().rstrip()
        assert parser.buffered == 0
        return got

    twin = read(crlf)
    assert len(twin) >= 5  # a real recording, not an empty file
    assert read(lf) == twin


@pytest.mark.parametrize("stamp", ["nan", "inf", "-inf", "soon", ""])
def test_a_timestamp_that_is_no_time_gives_the_receive_time(stamp: str) -> None:
    """float() reads "nan" and "inf"; neither is a time: the event takes the receive
    time and says it had no Timestamp (the translator counts and warns once)."""
    raw = f"Event: Hangup\r\nTimestamp: {stamp}\r\nChannel: P/1\r\nCallerIDNum: 1\r\n"
    raw += "CallerIDName: n\r\nExten: s\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\nCause: 16"
    event, stamped = at.translate(wire(raw.encode()), 42.0)
    assert isinstance(event, ev.ChannelHungUp)
    assert (event.at, stamped) == (42.0, False)


@pytest.mark.parametrize(
    ("raw", "routing"),
    [
        (b"Event:Hangup\r\nUniqueid: u1", ("Hangup", None, None)),
        (b"Response:Success\r\nActionID:pbx-1", (None, "Success", "pbx-1")),
        (b"Event: QueueMember\r\nActionID:pbx-2\r\nQueue: q", ("QueueMember", None, "pbx-2")),
        (b"Event:Hangup\r\nEvent: Other", ("Hangup", None, None)),
    ],
    ids=["event", "response", "list-item", "first-wins"],
)
def test_routing_keys_written_without_the_space_are_read_as_the_full_parse_reads_them(
    raw: bytes, routing: tuple[str | None, str | None, str | None]
) -> None:
    """Event, Response and ActionID route every message: a "Key:value" line (no space)
    must not make a lazily read message look like something else (an event like an
    unsolicited response, a reply like nobody's). Same answer before and after a full
    parse."""
    msg = wire(raw)
    assert (msg.event, msg.response, msg.action_id) == routing
    full = eager(wire(raw))
    assert (full.event, full.response, full.action_id) == routing


def test_a_list_item_whose_actionid_lacks_the_space_is_kept_while_replies_are_expected() -> None:
    """The filter keeps an unwanted event carrying "ActionID:x" (no space) while an
    action awaits its reply, as it keeps "ActionID: x"."""
    parser = AmiStreamParser(expect_banner=False, wanted=frozenset({"Hangup"}))
    parser.replies_expected = True
    got = parser.feed(b"Event: QueueMember\r\nQueue: q\r\nActionID:pbx-7\r\n\r\n")
    assert [(m.event, m.action_id) for m in got] == [("QueueMember", "pbx-7")]


@pytest.mark.parametrize("wanted", [None, at.WANTED_EVENTS], ids=["all", "selected"])
def test_a_bare_lf_message_with_undecodable_bytes_does_not_swallow_the_next(
    wanted: frozenset[str] | None,
) -> None:
    """The same, when the read also holds bytes that are not UTF-8 (the message by
    message path): the Hangup arrives, and the odd message is still marked."""
    stream = MIXED_STREAM.replace(b"SIP/a-1", b"SIP/M\xfcller-1")
    for cut in range(len(BANNER), len(stream) + 1, 7):
        parser = AmiStreamParser(wanted=wanted)
        got = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [m.event for m in got if m.event is not None][-1] == "Hangup", cut
        odd = [m for m in got if m.event == "Newstate"]
        assert [m.decode_error for m in odd] == ([] if wanted else [True]), cut
        assert [m.get("Channel") for m in odd] == ([] if wanted else ["SIP/M\ufffdller-1"])
