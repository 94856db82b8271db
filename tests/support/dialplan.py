"""A small static reader of extensions.conf text: what can run from an extension."""

from __future__ import annotations

import re
from collections import defaultdict

Place = tuple[str, str]  # (context, extension)
Dialplan = dict[Place, list[tuple[str, str]]]  # -> [(application, arguments)]

_EXTEN = re.compile(r"^\s*exten\s*=>\s*([^,]+),\s*[^,]+,(.*)$")
_SAME = re.compile(r"^\s*same\s*=>\s*[^,]+,(.*)$")
_APP = re.compile(r"^\s*([A-Za-z0-9_]+)\s*\((.*)\)\s*$")
_JUMPS = {"Gosub", "Goto", "GotoIf", "GosubIf"}


def parse(text: str) -> Dialplan:
    plan: Dialplan = defaultdict(list)
    context = exten = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].rstrip()
        if line.startswith("[") and "]" in line:
            context = line[1 : line.index("]")]
            continue
        if m := _EXTEN.match(line):
            exten, body = m.group(1).strip(), m.group(2)
        elif m := _SAME.match(line):
            body = m.group(1)
        else:
            continue
        app = _APP.match(body)
        name, args = (app.group(1), app.group(2)) if app else (body.strip(), "")
        plan[(context, exten)].append((name, args))
    return dict(plan)


def _place(fields: list[str], here: Place) -> Place:
    fields = [f.split("(", 1)[0].strip() for f in fields]
    if len(fields) >= 3:
        return (fields[0], fields[1])
    if len(fields) == 2:
        return (here[0], fields[0])
    return here


def _targets(app: str, args: str, here: Place) -> set[Place]:
    found: set[Place] = set()
    if app in _JUMPS:
        for part in re.split(r"\?|:(?![^(]*\))", args.split("]", 1)[-1]):
            found.add(_place(part.split(","), here))
    if app == "Queue":
        for sub in re.findall(r"[bB]\(([^)]*)\)", args):
            found.add(_place(sub.split("^"), here))
    return {t for t in found if "$" not in "".join(t)}


def reachable_apps(plan: Dialplan, start: Place) -> set[tuple[str, str, str]]:
    """(context, application, arguments) of everything reachable from ``start``."""
    seen: set[Place] = set()
    todo = [start]
    apps: set[tuple[str, str, str]] = set()
    while todo:
        place = todo.pop()
        if place in seen:
            continue
        seen.add(place)
        for app, args in plan.get(place, []):
            apps.add((place[0], app, args))
            todo.extend(_targets(app, args, place))
    return apps
