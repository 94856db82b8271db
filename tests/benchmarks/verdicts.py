"""The closing table of a benchmark: each measurement, its result, its target and the
verdict (targets are ratios or budgets judged within the run)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
    what: str
    result: str
    target: str
    ok: bool | None  # None: reported, not judged


def print_table(rows: list[Row], *, target: str = "target", missed: str = "MISS") -> None:
    print()
    w = max(len(r.what) for r in rows)
    v = max(len(r.result) for r in rows)
    t = max(len(r.target) for r in rows)
    print(f"{'what':<{w}}  {'result':<{v}}  {target:<{t}}  verdict")
    for r in rows:
        verdict = "" if r.ok is None else ("PASS" if r.ok else missed)
        print(f"{r.what:<{w}}  {r.result:<{v}}  {r.target:<{t}}  {verdict}")
