"""The report's charts, drawn by matplotlib as SVG to inline in the page.

Text stays text (``svg.fonttype = none``): it is searchable, translated and read by the
tests in a real browser. Each chart's data marks carry an id ``<chart>-mark-<n>`` so a
test can tell a chart that drew something from an empty frame. No chart is drawn for
data that is not there: the page says so instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import date
from itertools import pairwise
from typing import Any

import matplotlib

matplotlib.use("svg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from pbxbridge.i18n import Messages

# Colours readable by the colour-blind (Okabe-Ito) and in black-and-white print.
BLUE, ORANGE, GREEN, RED, PURPLE, SKY, YELLOW, GREY = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#999999",
)
SERIES = (BLUE, ORANGE, GREEN, RED, PURPLE, SKY, YELLOW, GREY)
STAGE_COLOURS = {"before_queue": GREY, "queue": ORANGE, "ringing": RED}

_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "pbxbridge",  # the same report gives the same bytes
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
}


_METADATA = ("Creator", "Date", "Format", "Type")


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    # No metadata block: its RDF names web addresses a reader might take for links.
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=dict.fromkeys(_METADATA))
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _mark(name: str, artists: Sequence[Any]) -> None:
    for n, artist in enumerate(artists):
        artist.set_gid(f"{name}-mark-{n}")


def _share_axis(ax: Axes, msg: Messages) -> None:
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: msg.percent(v, 0)))


def _count_axis(ax: Axes, msg: Messages) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: msg.number(v)))


def _figure(width: float = 7.5, height: float = 3.0) -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def trend(doc: dict[str, Any], msg: Messages) -> str:
    days = doc["days"]
    dates = [date.fromisoformat(d["date"]) for d in days]
    fig, ax = _figure()
    bars = ax.bar(
        range(len(days)), [d["offered"] for d in days], color=SKY, label=msg("chart.offered")
    )
    _mark("trend", list(bars))
    ax.set_ylabel(msg("chart.calls"))
    _count_axis(ax, msg)
    level = ax.twinx()
    xs = [i for i, d in enumerate(days) if d["share_15"] is not None]
    (line,) = level.plot(
        xs,
        [days[i]["share_15"] for i in xs],
        color=BLUE,
        marker="o",
        markersize=3,
        label=msg("chart.share_15"),
    )
    _mark("trend-level", [line])
    level.axhline(0.9, color=RED, linestyle="--", linewidth=1, label=msg("chart.target_15"))
    _share_axis(level, msg)
    level.grid(False)
    level.spines["right"].set_visible(True)
    step = max(1, len(days) // 10)
    ax.set_xticks(
        range(0, len(days), step), [msg.short_day(dates[i]) for i in range(0, len(days), step)]
    )
    handles: list[Any] = [bars, line, *level.get_lines()[1:]]
    ax.legend(handles, [h.get_label() for h in handles], loc="lower left", fontsize=8, ncols=3)
    return _svg(fig)


def heatmap(doc: dict[str, Any], msg: Messages, which: str) -> str:
    grid = doc["heatmap"][which]
    fig, ax = _figure(7.5, 2.6)
    if which == "share_15":
        values = [[float("nan") if v is None else v for v in row] for row in grid]
        cmap = matplotlib.colormaps["RdYlBu"].with_extremes(bad="#e0e0e0")
        image = _cells(ax, values, cmap=cmap, vmin=0.5, vmax=1.0)
        _colour_key(fig, ax, image, msg("chart.share_15"), lambda v: msg.percent(v, 0))
    else:
        image = _cells(ax, grid, cmap="Blues")
        _colour_key(fig, ax, image, msg("chart.calls"), msg.number)
    _mark(f"heatmap-{which}", [image])
    _week_axes(ax, msg, 24, lambda h: f"{h:02d}")
    ax.set_xlabel(msg("chart.hour"))
    return _svg(fig)


def _colour_key(fig: Figure, ax: Axes, mesh: Any, label: str, text: Callable[[float], str]) -> None:
    """The colour key beside a grid, vector too (matplotlib rasterises it by default)."""
    bar = fig.colorbar(mesh, ax=ax, format=FuncFormatter(lambda v, _: text(v)))
    if bar.solids is not None:
        bar.solids.set_rasterized(False)
    bar.set_label(label)


def _cells(ax: Axes, grid: Sequence[Sequence[float]], **colours: Any) -> Any:
    """A weekday x time grid as vector cells (an image would be a raster inside the SVG),
    Monday on top."""
    mesh = ax.pcolormesh(grid, edgecolors="white", linewidth=0.3, **colours)
    ax.set_xlim(0, len(grid[0]))
    ax.set_ylim(len(grid), 0)
    return mesh


def _week_axes(ax: Axes, msg: Messages, columns: int, label: Callable[[int], str]) -> None:
    ax.grid(False)
    ax.set_yticks([n + 0.5 for n in range(7)], [msg.weekday(n) for n in range(7)])
    step = max(1, columns // 12)
    ax.set_xticks(range(0, columns, step), [label(c) for c in range(0, columns, step)])


def _edge_labels(edges: Sequence[float], msg: Messages) -> list[str]:
    labels = [msg("chart.range", a=msg.number(a), b=msg.number(b)) for a, b in pairwise(edges)]
    return [*labels, msg("chart.above", n=msg.number(edges[-1]))]


def answers(doc: dict[str, Any], msg: Messages) -> str:
    dist = doc["answer_distribution"]
    fig, ax = _figure(7.5, 2.8)
    bars = ax.bar(range(len(dist["counts"])), dist["counts"], color=BLUE, width=0.9)
    _mark("answers", list(bars))
    edges = dist["edges"]
    for seconds, colour in ((10, GREEN), (15, ORANGE), (20, RED)):
        x = edges.index(seconds) - 0.5
        ax.axvline(x, color=colour, linestyle="--", linewidth=1.2)
        ax.text(
            x, ax.get_ylim()[1], f" {msg.seconds(seconds, 0)}", color=colour, va="top", fontsize=8
        )
    ax.set_xticks(range(len(edges)), _edge_labels(edges, msg), rotation=30, ha="right")
    ax.set_xlabel(msg("chart.answer_seconds"))
    ax.set_ylabel(msg("chart.calls"))
    _count_axis(ax, msg)
    return _svg(fig)


def abandons(doc: dict[str, Any], msg: Messages) -> str:
    dist = doc["abandon_distribution"]
    fig, ax = _figure(7.5, 2.8)
    width, stages = 0.28, list(dist["by_stage"])
    marks: list[Any] = []
    for n, stage in enumerate(stages):
        xs = [i + (n - 1) * width for i in range(len(dist["edges"]))]
        marks += ax.bar(
            xs,
            dist["by_stage"][stage],
            width=width,
            color=STAGE_COLOURS[stage],
            label=msg(f"stage.{stage}"),
        )
    _mark("abandons", marks)
    ax.set_xticks(
        range(len(dist["edges"])), _edge_labels(dist["edges"], msg), rotation=30, ha="right"
    )
    ax.set_xlabel(msg("chart.abandon_seconds"))
    ax.set_ylabel(msg("chart.calls"))
    _count_axis(ax, msg)
    ax.legend(fontsize=8)
    return _svg(fig)


def stacked_days(doc: dict[str, Any], msg: Messages, section: str) -> str:
    part = doc[section]
    keys = part["categories"] if section == "classification" else part["agencies"]
    days = part["by_day"]
    dates = [date.fromisoformat(d["date"]) for d in days]
    group = "category" if section == "classification" else "agency"
    fig, ax = _figure(7.5, 2.8)
    bottom = [0] * len(days)
    marks: list[Any] = []
    for n, key in enumerate(keys):
        values = [d[key] for d in days]
        label = msg.label(group, key)
        marks += ax.bar(
            range(len(days)), values, bottom=bottom, color=SERIES[n % len(SERIES)], label=label
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _mark(section, marks)
    step = max(1, len(days) // 10)
    ax.set_xticks(
        range(0, len(days), step), [msg.short_day(dates[i]) for i in range(0, len(days), step)]
    )
    ax.set_ylabel(msg("chart.calls") if section == "classification" else msg("chart.dispatches"))
    _count_axis(ax, msg)
    # Below the chart: a month of stacked bars leaves no corner free for it.
    ax.legend(
        fontsize=8,
        ncols=min(4, max(1, len(keys))),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        frameon=False,
    )
    return _svg(fig)


def staffing(doc: dict[str, Any], msg: Messages) -> str:
    staff = doc["staffing"]
    key = "needed_erlang_a" if staff["model"] == "erlang_a" else "needed_erlang_c"
    gap = [[0.0] * 48 for _ in range(7)]
    for s in staff["slots"]:
        needed = s[key] or 0
        gap[s["weekday"]][int(s["start"][:2]) * 2 + int(s["start"][3:]) // 30] = (
            s["logged_in"] - needed
        )
    fig, ax = _figure(7.5, 2.8)
    worst = max(1.0, *(abs(v) for row in gap for v in row))
    image = _cells(ax, gap, cmap="RdBu", vmin=-worst, vmax=worst)
    _mark("staffing", [image])
    _colour_key(fig, ax, image, msg("chart.staff_gap"), lambda v: msg.number(v, 1))
    _week_axes(ax, msg, 48, lambda c: f"{c // 2:02d}:{c % 2 * 30:02d}")
    ax.set_xlabel(msg("chart.half_hour"))
    return _svg(fig)


def draw(doc: dict[str, Any], msg: Messages) -> dict[str, str]:
    """Every chart the report has data for, by name."""
    with plt.rc_context(_STYLE):
        out: dict[str, str] = {}
        if doc["empty"]:
            return out
        out["trend"] = trend(doc, msg)
        out["heatmap_share"] = heatmap(doc, msg, "share_15")
        out["heatmap_volume"] = heatmap(doc, msg, "offered")
        if doc["headline"]["answered"]:
            out["answers"] = answers(doc, msg)
        if doc["headline"]["abandoned"]:
            out["abandons"] = abandons(doc, msg)
        if any(doc["classification"]["total"].values()):
            out["classification"] = stacked_days(doc, msg, "classification")
        if any(doc["dispatch"]["total"].values()):
            out["dispatch"] = stacked_days(doc, msg, "dispatch")
        out["staffing"] = staffing(doc, msg)
        return out
