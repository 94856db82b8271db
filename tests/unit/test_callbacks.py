"""The callback list: who is owed a call back, claims, and how entries leave it."""

from __future__ import annotations

from dataclasses import replace

from pbxbridge import callbacks as cb
from pbxbridge import tracker as tr

BASE = tr.CallRecord("pbx:L1", "L1", "112", "0812000111", "", offered_at=100.0)


def ended(call_id: str, outcome: str, number: str = "0812000111", at: float = 110.0):
    rec = replace(BASE, call_id=call_id, caller_number=number, ended_at=at, outcome=outcome)
    return tr.CallEnded(rec)


def test_abandoned_unanswered_and_never_answered_interrupted_calls_join_the_list() -> None:
    """Abandoned, unanswered and interrupted-before-any-answer emergency calls with a
    dialable number are owed a callback; answered ones (interrupted included) are not."""
    book = cb.CallbackBook()
    answered_then_lost = replace(ended("f", "interrupted", at=112).record, answered_at=105.0)
    changes = book.apply(
        [
            ended("a", "abandoned"),
            ended("b", "unanswered", at=111),
            ended("c", "answered"),
            ended("d", "interrupted", at=112),
            ended("e", "abandoned", number="anonymous"),
            tr.CallEnded(answered_then_lost),
        ]
    )
    assert [e.call_id for e in book.pending()] == ["a", "b", "d"]
    assert [(type(c), c.entry.call_id) for c in changes] == [
        (cb.Queued, "a"),
        (cb.Queued, "b"),
        (cb.Queued, "d"),
    ]


def test_two_call_takers_claiming_at_once_get_different_callers() -> None:
    """A claim leases the oldest free entry: concurrent claims never share a caller."""
    book = cb.CallbackBook()
    book.apply([ended("a", "abandoned", at=110), ended("b", "abandoned", at=105)])
    first, second = book.claim("PJSIP/1001", 200), book.claim("PJSIP/1002", 200)
    assert isinstance(first, cb.Claimed) and isinstance(second, cb.Claimed)
    assert (first.entry.call_id, second.entry.call_id) == ("b", "a")
    assert book.claim("PJSIP/1003", 200) == cb.ClaimRefused("PJSIP/1003", 200, "empty")
    again = book.claim("PJSIP/1003", 200 + cb.CLAIM_SECONDS)  # an unused claim expires
    assert isinstance(again, cb.Claimed) and again.entry.call_id == "b"


def test_a_phone_holds_one_lease_and_cannot_drain_the_list() -> None:
    """Claiming again while holding a lease returns the same caller, unextended; past
    CLAIMS_PER_MINUTE claims a minute a phone is refused, so a loop of claims can never
    keep the list from the other call takers."""
    book = cb.CallbackBook()
    book.apply([ended(n, "abandoned", at=100 + i) for i, n in enumerate("abc")])
    first = book.claim("PJSIP/1001", 200)
    assert isinstance(first, cb.Claimed) and first.entry.call_id == "a"
    for i in range(1, cb.CLAIMS_PER_MINUTE):
        again = book.claim("PJSIP/1001", 200 + i)
        assert again == cb.Claimed(first.entry), "the same lease, not another caller"
    assert book.claim("PJSIP/1001", 210).reason == "limited"  # type: ignore[union-attr]
    other = book.claim("PJSIP/1002", 210)
    assert isinstance(other, cb.Claimed) and other.entry.call_id == "b"
    later = book.claim("PJSIP/1001", 261)  # a minute on: allowed again
    assert isinstance(later, cb.Claimed) and later.entry.call_id == "a"


def test_answered_callback_closes_the_entry_failed_one_keeps_it() -> None:
    """A NOANSWER attempt is recorded and the caller stays owed; ANSWER closes it."""
    book = cb.CallbackBook()
    book.apply([ended("a", "abandoned")])
    book.claim("PJSIP/1001", 200)
    changes = book.apply([tr.CallbackResult(210, "a", "NOANSWER", "PJSIP/1001")])
    assert [type(c) for c in changes] == [cb.Attempted]
    [entry] = book.pending()
    assert (entry.attempts, entry.first_attempt_at, entry.claimed_by) == (1, 210, None)
    changes = book.apply([tr.CallbackResult(300, "a", "ANSWER", "PJSIP/1002")])
    assert [type(c) for c in changes] == [cb.Attempted, cb.Closed]
    assert book.pending() == []
    closed = changes[-1].entry
    assert (closed.result, closed.attempts, closed.first_attempt_at) == ("answered", 2, 210)


def test_the_same_number_calling_again_and_being_answered_closes_the_entry() -> None:
    """A repeat 112 call from the number, answered by a call taker, settles the callback."""
    book = cb.CallbackBook()
    book.apply([ended("a", "abandoned")])
    again = replace(BASE, call_id="pbx:L2", answered_at=400.0)
    changes = book.apply([tr.CallAnswered(again)])
    assert [(type(c), c.entry.result) for c in changes] == [(cb.Closed, "recalled")]
    assert book.pending() == []


def test_a_result_for_an_unknown_call_changes_nothing() -> None:
    """A callback result that matches no pending entry is ignored."""
    book = cb.CallbackBook()
    assert book.apply([tr.CallbackResult(1, "nope", "ANSWER", "x")]) == []
