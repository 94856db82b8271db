"""The pure AMI parser: framing, decoding, odd lines, banner, and safe action formatting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxbridge.ami_parser import (
    AmiStreamParser,
    Message,
    event_lines,
    format_action,
    parse,
    parse_selected,
    split_banner,
)

BANNER = b"Asterisk Call Manager/9.0.0\r\n"


def feed_all(pieces: list[bytes]) -> list[Message]:
    parser = AmiStreamParser()
    return [m for piece in pieces for m in parser.feed(piece)]


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (b"Event: Hangup\r\nCause: 16\r\n\r\n", (("Event", "Hangup"), ("Cause", "16"))),
        (b"Event: Hangup\nCause: 16\n\n", (("Event", "Hangup"), ("Cause", "16"))),
        (
            b"Response: Success\r\nMessage: a: b\r\n\r\n",
            (("Response", "Success"), ("Message", "a: b")),
        ),
        (b"Event: X\r\nKey:\r\n\r\n", (("Event", "X"), ("Key", ""))),
        (b"Event: X\r\nKey:v\r\n\r\n", (("Event", "X"), ("Key", "v"))),
        (b"\r\n\r\nEvent: X\r\n\r\n", (("Event", "X"),)),
    ],
    ids=[
        "crlf",
        "bare-lf",
        "colon-in-value",
        "colon-no-space",
        "no-space-value",
        "stray-terminator",
    ],
)
def test_table(raw: bytes, fields: tuple[tuple[str, str], ...]) -> None:
    """Each framing and line form parses to exactly these fields, nothing left over."""
    messages, rest = parse(raw)
    assert [m.fields for m in messages] == [fields]
    assert rest == b""


def test_incomplete_message_is_left_over() -> None:
    """Bytes after the last terminator stay with the caller, undecoded."""
    messages, rest = parse(b"Event: A\r\n\r\nEvent: B\r\nName: M\xc3")
    assert [m.event for m in messages] == ["A"]
    assert rest == b"Event: B\r\nName: M\xc3"


def test_empty_value_on_last_line_is_kept() -> None:
    """A header with an empty value on a message's last line is kept (panoramisk drops it)."""
    (msg,), _ = parse(b"Event: Hangup\r\nUniqueid: 1.1\r\nConnectedLineName: \r\n\r\n")
    assert msg.get("ConnectedLineName") == ""


def test_repeated_keys_kept_in_order() -> None:
    """Repeated keys (Command Output, ChanVariable) are all kept, in wire order."""
    raw = b"Response: Success\r\nOutput: line 1\r\nOutput: line 2\r\nOutput: \r\n\r\n"
    (msg,), _ = parse(raw)
    assert msg.get_all("Output") == ["line 1", "line 2", ""]
    assert msg.get("output") == "line 1"


def test_lookup_exact_case_first_then_any_case() -> None:
    """get() prefers the exact key, falls back to a case-insensitive match, else default."""
    msg = Message((("actionid", "x"), ("ActionID", "y")))
    assert msg.get("ActionID") == "y"
    assert msg.get("ACTIONID") == "x"
    assert msg.get("Missing", "d") == "d"
    assert msg.action_id == "y"
    assert msg.event is None and msg.response is None


def test_invalid_utf8_marks_message_and_keeps_fields() -> None:
    """Invalid UTF-8 is replaced, flagged with decode_error, and no field is lost."""
    raw = b"Event: A\r\n\r\nEvent: UserEvent\r\nName: M\xff\xfeller\r\nSeq: 2\r\n\r\n"
    (ok, bad), _ = parse(raw)
    assert not ok.decode_error
    assert bad.decode_error
    assert bad.get("Name") == "M\ufffd\ufffdller"
    assert bad.get("Seq") == "2"


def test_line_without_colon_is_counted_not_raised() -> None:
    """A line without ':' keeps its message and is counted in malformed_lines."""
    (msg,), _ = parse(b"Event: X\r\ngarbage line\r\nSeq: 1\r\n\r\n")
    assert msg.malformed_lines == 1
    assert msg.fields == (("Event", "X"), ("Seq", "1"))


def test_banner_then_messages() -> None:
    """The session's first line is the banner; what follows in the same read is parsed."""
    assert split_banner(b"Asterisk Call") == (None, b"Asterisk Call")
    parser = AmiStreamParser()
    assert parser.feed(BANNER[:10]) == []
    assert parser.banner is None
    messages = parser.feed(BANNER[10:] + b"Response: Success\r\n\r\n")
    assert parser.banner == "Asterisk Call Manager/9.0.0"
    assert [m.response for m in messages] == ["Success"]


def test_split_multibyte_character_survives() -> None:
    """A UTF-8 character cut between two reads decodes whole once the message is complete."""
    raw = "Event: UserEvent\r\nName: Müller\r\n\r\n".encode()
    cut = raw.index(b"\xc3") + 1
    (msg,) = feed_all([BANNER, raw[:cut], raw[cut:]])
    assert msg.get("Name") == "Müller"
    assert not msg.decode_error


# Keys are AMI-like tokens; values are any text without CR/LF (what Asterisk can frame).
keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,11}", fullmatch=True)
values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=20,
) | st.sampled_from(["Müller", "Ω", "", "a: b", " lead"])
messages_st = st.lists(
    st.lists(st.tuples(keys, values), min_size=1, max_size=6), min_size=1, max_size=8
)


@settings(max_examples=300, deadline=None)
@given(messages_st, st.lists(st.integers(min_value=0), max_size=12), st.booleans())
def test_any_chunking_equals_whole(
    messages: list[list[tuple[str, str]]], cuts: list[int], bare_lf: bool
) -> None:
    """A stream cut at any byte offsets parses to exactly the messages of the whole stream."""
    eol = "\n" if bare_lf else "\r\n"
    text = "".join("".join(f"{k}: {v}{eol}" for k, v in m) + eol for m in messages)
    stream = BANNER + text.encode()
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    whole = feed_all([stream])
    assert feed_all(pieces) == whole
    assert [list(m.fields) for m in whole] == messages


WANTED = frozenset({"Hangup", "Newchannel"})


def kept(m: Message) -> bool:
    """What parse_selected must keep: a wanted event, any non-event, anything with an
    ActionID line in the case Asterisk writes and the AMI client routes on."""
    return (
        m.fields[0][0] != "Event"
        or m.fields[0][1] in WANTED
        or any(k == "ActionID" for k, _ in m.fields[1:])
    )


def test_selected_keeps_wanted_responses_and_action_replies_and_counts_the_rest() -> None:
    """Unwanted events are counted, never returned; responses, ActionID messages (list
    items) and wanted events are returned in order. An "actionid" line is not what
    Asterisk writes nor what the client routes replies on: that event is skipped."""
    raw = (
        b"Event: Newexten\r\nUniqueid: 1.1\r\n\r\n"
        b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n"
        b"Response: Success\r\nActionID: a-1\r\n\r\n"
        b"Event: QueueMember\r\nActionID: a-2\r\n\r\n"
        b"Event: QueueParams\r\nactionid: a-2\r\n\r\n"
        b"Event: VarSet\r\nValue: M\xff\r\n\r\n"
        b"Event: Hangup\r\nUniqueid: 1.2"
    )
    messages, skipped, rest = parse_selected(raw, event_lines(WANTED))
    assert [(m.event, m.response) for m in messages] == [
        ("Hangup", None),
        (None, "Success"),
        ("QueueMember", None),
    ]
    assert skipped == 3
    assert rest == b"Event: Hangup\r\nUniqueid: 1.2"


def test_selected_bare_lf_stream() -> None:
    """The bare-LF framing path filters the same way."""
    raw = b"Event: Newexten\nX: 1\n\nEvent: Hangup\nUniqueid: 1.1\n\n"
    messages, skipped, rest = parse_selected(raw, event_lines(WANTED))
    assert [m.fields for m in messages] == [(("Event", "Hangup"), ("Uniqueid", "1.1"))]
    assert (skipped, rest) == (1, b"")


event_names = st.sampled_from(["Hangup", "Newchannel", "Newexten", "VarSet", "Hangup2"])
typed_messages = st.lists(
    st.tuples(
        st.sampled_from(["Event", "Response"]),
        event_names,
        st.lists(st.tuples(keys | st.sampled_from(["ActionID", "actionid"]), values), max_size=4),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(typed_messages, st.lists(st.integers(min_value=0), max_size=12), st.booleans())
def test_selected_equals_parse_then_filter_under_any_chunking(
    messages: list[tuple[str, str, list[tuple[str, str]]]], cuts: list[int], bare_lf: bool
) -> None:
    """With ``wanted``, a stream cut anywhere yields exactly parse()'s kept messages, and
    skipped + kept = every message: nothing is lost silently."""
    eol = "\n" if bare_lf else "\r\n"
    text = "".join(
        f"{head}: {name}{eol}" + "".join(f"{k}: {v}{eol}" for k, v in rest) + eol
        for head, name, rest in messages
    )
    stream = BANNER + text.encode()
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    everything = feed_all([stream])
    parser = AmiStreamParser(wanted=WANTED)
    got = [m for piece in pieces for m in parser.feed(piece)]
    assert got == [m for m in everything if kept(m)]
    assert parser.skipped == len(everything) - len(got)


@pytest.mark.parametrize(
    "fields",
    [
        {"Variable": "x\r\n\r\nAction: Hangup"},
        {"Variable": "x\nAction: Hangup"},
        {"Vari\r\nable": "x"},
        {"Vari:able": "x"},
        {"": "x"},
    ],
    ids=["crlf-value", "lf-value", "crlf-key", "colon-key", "empty-key"],
)
def test_format_action_rejects_injection(fields: dict[str, str]) -> None:
    """format_action refuses CR/LF in keys or values and ':' in keys."""
    with pytest.raises(ValueError, match="AMI"):
        format_action("UserEvent", fields)


def test_format_action_error_names_key_not_value() -> None:
    """The error names the offending key but never echoes the value (it may be a secret)."""
    with pytest.raises(ValueError) as info:
        format_action("Login", [("Username", "u"), ("Secret", "hunter2\r\n")])
    assert "Secret" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_format_action_round_trip() -> None:
    """A formatted action is one CRLF-framed message the parser reads back identically."""
    raw = format_action("Originate", [("Channel", "PJSIP/Müller"), ("Async", "true")])
    assert raw.endswith(b"\r\n\r\n")
    (msg,), rest = parse(raw)
    assert msg.fields == (("Action", "Originate"), ("Channel", "PJSIP/Müller"), ("Async", "true"))
    assert rest == b""


def test_without_pending_replies_an_unwanted_event_is_judged_on_its_first_line() -> None:
    """When no action waits for a reply (the client says so), an unwanted event is
    skipped even if it carries an ActionID: it cannot be a list item of ours. While one
    waits, the same event is kept. Responses and wanted events are kept either way."""
    raw = (
        b"Event: QueueMember\r\nQueue: q\r\nActionID: a-2\r\n\r\n"
        b"Response: Success\r\nActionID: a-1\r\n\r\n"
        b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n"
    )
    for expecting, events in ((True, ["QueueMember", None, "Hangup"]), (False, [None, "Hangup"])):
        parser = AmiStreamParser(expect_banner=False, wanted=WANTED)
        parser.replies_expected = expecting
        assert [m.event for m in parser.feed(raw)] == events
        assert parser.skipped == 3 - len(events)
