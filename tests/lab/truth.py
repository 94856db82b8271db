"""What really happened, computed from raw AMI bytes without any pbxbridge code.

The integration tests hold pbxbridge's records against this: arrival is the first
Newchannel of a Linkedid, answer is the AgentConnect for it, both by Asterisk's
Timestamp. Also reads Asterisk's own queue_log for per-queue counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tests.lab.amilink import split_raw


@dataclass
class Truth:
    offered_at: float
    answered_at: float | None = None
    answered_queue: str | None = None

    @property
    def answer_seconds(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.offered_at


def from_raw(raw: bytes) -> dict[str, Truth]:
    calls: dict[str, Truth] = {}
    for msg in split_raw(raw):
        event, linkedid = msg.get("Event"), msg.get("Linkedid", "")
        if "Timestamp" not in msg or not linkedid:
            continue
        ts = float(msg["Timestamp"])
        if event == "Newchannel":
            truth = calls.setdefault(linkedid, Truth(ts))
            truth.offered_at = min(truth.offered_at, ts)
        elif event == "AgentConnect" and linkedid in calls:
            calls[linkedid].answered_at = ts
            calls[linkedid].answered_queue = msg.get("Queue")
    return calls


def queue_log_counts(lines: list[str]) -> Counter[tuple[str, str]]:
    """(queue, verb) -> count, for CONNECT / ABANDON / EXITWITHTIMEOUT lines."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in lines:
        parts = line.split("|")
        if len(parts) >= 5 and parts[4] in ("CONNECT", "ABANDON", "EXITWITHTIMEOUT"):
            counts[(parts[2], parts[4])] += 1
    return counts
