"""Nothing on a 112 caller's path can wait on pbxbridge: the dialplan, read statically."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.lab import confs
from tests.support import dialplan

ROOT = Path(__file__).resolve().parents[2]
HOOKS = (ROOT / "dialplan" / "pbxbridge.conf").read_text()
# Applications and functions that block on something outside Asterisk.
FORBIDDEN_APPS = {"AGI", "EAGI", "DeadAGI", "System", "TrySystem", "Dial_curl", "Stasis"}
FORBIDDEN_FUNCS = re.compile(r"\$\{(CURL|SHELL|ODBC_[A-Z]+|REALTIME[A-Z_]*)\(")


def entry_contexts() -> list[tuple[str, str, dialplan.Place]]:
    """(name, dialplan text incl. the hooks) of every emergency entry context we ship."""
    found = [("lab", confs.extensions_conf() + HOOKS, (confs.ENTRY_CONTEXT, "112"))]
    example = ROOT / "config" / "asterisk" / "extensions-example.conf"
    if example.exists():
        text = example.read_text()
        plan = dialplan.parse(text)
        for place, steps in plan.items():
            if steps and steps[0][0] == "Gosub" and steps[0][1].startswith("pbxbridge,offered,"):
                found.append((f"example:{place[0]}", text + HOOKS, place))
    return found


@pytest.mark.parametrize(("name", "text", "context"), entry_contexts())
def test_no_agi_or_network_is_reachable_from_an_emergency_entry_context(
    name: str, text: str, context: dialplan.Place
) -> None:
    """From the emergency entry context, only UserEvent-style hooks run: no AGI, no
    network, no process."""
    reachable = dialplan.reachable_apps(dialplan.parse(text), context)
    assert any(app == "UserEvent" for _, app, _ in reachable), "the offered hook must run"
    bad = [(c, a) for c, a, args in reachable if a in FORBIDDEN_APPS]
    bad += [(c, a) for c, a, args in reachable if FORBIDDEN_FUNCS.search(args)]
    assert bad == []


def test_the_checker_can_fail() -> None:
    """The reachability check does find an AGI hidden behind a Gosub."""
    text = "[e]\nexten => 112,1,Gosub(x,s,1)\n[x]\nexten => s,1,AGI(evil)\n"
    apps = dialplan.reachable_apps(dialplan.parse(text), ("e", "112"))
    assert ("x", "AGI", "evil") in apps


def test_the_callback_feature_is_outside_the_callers_path() -> None:
    """The only AGI in the hooks belongs to the call takers' callback extension."""
    plan = dialplan.parse(HOOKS)
    agi = [(p, a, args) for p, steps in plan.items() for a, args in steps if a == "AGI"]
    assert agi == [(("pbxbridge", "callback"), "AGI", "pbxbridge-agi,callback")]
    for hook in ("offered", "classify", "dispatch"):
        assert [a for a, _ in plan[("pbxbridge", hook)]] == ["UserEvent", "Return"]


def test_hook_values_are_filtered_tokens() -> None:
    """Every UserEvent header value in the hooks passes through FILTER or is a constant."""
    for line in HOOKS.splitlines():
        if "UserEvent(" in line and not line.lstrip().startswith(";"):
            for value in re.findall(r": (\$\{.*?\}\)?\}?)(?:,|\)$)", line):
                assert "FILTER(" in value, line
