"""config/grafana/pbxbridge.json: every query parses and reads only pbxbridge's metrics.

PromQL is parsed offline by promtool: each expression becomes a recording rule in a
temporary rules file and `promtool check rules` must accept it.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.exported import exported_names
from tests.support.tools import require

DASHBOARD = Path(__file__).resolve().parents[2] / "config" / "grafana" / "pbxbridge.json"

# What pbxbridge exports, read off a real scrape of a fully wired Metrics.
EXPORTED = exported_names()

# Grafana's macros and this dashboard's variables, replaced by something PromQL accepts.
MACROS = {"__range": "1h", "__rate_interval": "1m", "__interval": "1m"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel."""
    return [
        (p["title"], t["expr"])
        for p in panels(dashboard["panels"])
        for t in p.get("targets", [])
        if t.get("expr")
    ]


def substitute(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: MACROS.get(m.group(1), "x"), expr)


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, label
    names, keywords, durations or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_every_expression_parses(tmp_path: Path) -> None:
    """promtool accepts every PromQL expression of the dashboard."""
    exprs = expressions(load())
    assert len(exprs) >= 20
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:expr_{i}", "expr": substitute(e)}
                    for i, (_, e) in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    run = subprocess.run(
        [require("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_parse_check_is_not_blind(tmp_path: Path) -> None:
    """A broken expression in the generated rules file makes promtool fail."""
    path = tmp_path / "broken.rules.yml"
    broken = {"groups": [{"name": "g", "rules": [{"record": "r:x", "expr": "sum(rate(x[1m])"}]}]}
    path.write_text(json.dumps(broken))
    run = subprocess.run(
        [require("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0


def test_only_exported_metrics_are_queried() -> None:
    """Every metric a panel or a variable reads is one pbxbridge exports."""
    dashboard = load()
    used: dict[str, set[str]] = {}
    for title, expr in expressions(dashboard):
        for name in metric_names(substitute(expr)):
            used.setdefault(name, set()).add(title)
    for var in dashboard["templating"]["list"]:
        query = var.get("definition", "")
        found = re.match(r"label_values\((\w+),", query)
        if found:
            used.setdefault(found.group(1), set()).add(f"variable {var['name']}")
    unknown = {name: sorted(titles) for name, titles in used.items() if name not in EXPORTED}
    assert not unknown
    assert {"pbxbridge_answer_time_seconds_bucket", "pbxbridge_calls_offered_total"} <= set(used)


def test_metric_name_extraction() -> None:
    """The name extraction sees through functions, matchers, ranges and grouping."""
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{le="1.0",x=~"y"}[5m]))) '
        "/ on (instance) group_left b_total and c"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_datasource_is_a_template_variable() -> None:
    """Every panel and query uses the ${DS_PROMETHEUS} datasource, so import asks for it."""
    dashboard = load()
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
