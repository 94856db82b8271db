"""config/asterisk/manager.d/pbxbridge.conf stays in step with what pbxbridge reads."""

from __future__ import annotations

import re
from pathlib import Path

from pbxbridge import dialplan_vars as dv
from pbxbridge.ami_translate import TRANSLATORS

SNIPPET = Path(__file__).resolve().parents[2] / "config/asterisk/manager.d/pbxbridge.conf"
# QueueMember is a QueueStatus reply item: action replies are never filtered.
REPLY_ITEMS = {"QueueMember"}


def filters() -> list[tuple[str, str]]:
    """(criteria, value) of every active eventfilter line."""
    out = []
    for line in SNIPPET.read_text().splitlines():
        m = re.match(r"^eventfilter\((.*)\)\s*=\s*(.*)$", line)
        if m:
            out.append((m.group(1), m.group(2).strip()))
    return out


def test_filter_admits_every_translated_event() -> None:
    """Every event pbxbridge translates has an include filter, and nothing else does."""
    names = {m.group(1) for c, _ in filters() if (m := re.search(r"name\((\w+)\)", c))}
    assert len(names) == len(filters())
    assert names >= set(TRANSLATORS) - REPLY_ITEMS
    # Nothing pbxbridge does not read is let through.
    assert names - set(TRANSLATORS) == set()


def test_user_event_filter_admits_every_hook() -> None:
    """The UserEvent filter admits each hook's UserEvent name and only the Pbxbridge ones."""
    (criteria, prefix), *_ = [(c, v) for c, v in filters() if "name(UserEvent)" in c]
    assert "header(UserEvent)" in criteria
    assert "method(starts_with)" in criteria
    hooks = [v for k, v in vars(dv).items() if k.startswith("USEREVENT_")]
    assert hooks
    assert all(name.startswith(prefix) for name in hooks)


def test_every_filter_is_an_include() -> None:
    """Only include filters: an event is delivered when some filter names it."""
    assert all("action(include)" in c for c, _ in filters())
