"""``pbxbridge calls list | show | export``: the call store, read directly (the daemon
may be stopped), with the API's questions and errors (store_query)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from pbxbridge import config, store_query
from pbxbridge.store_read import Reader, Target, open_reader
from pbxbridge.store_sql import StoreUnavailable

_PAGE = 1000


def add_parser(sub: Any) -> None:
    calls = sub.add_parser("calls", help="the call store: list, show or export calls")
    calls_sub = calls.add_subparsers(dest="calls_command", required=True)
    ls = calls_sub.add_parser("list", help="calls of a period, oldest first (a table)")
    show = calls_sub.add_parser("show", help="one call's record (JSON)")
    show.add_argument("call_id", metavar="CALL_ID")
    export = calls_sub.add_parser("export", help="every call of a period, as CSV or JSON lines")
    for cmd in (ls, export):
        cmd.add_argument("--from", dest="from_", metavar="DATE", help="first local day (or time)")
        cmd.add_argument("--to", metavar="DATE", help="last local day, included (or time)")
        for name in store_query.CALL_FILTERS:
            cmd.add_argument(f"--{name}", metavar=name.upper())
    ls.add_argument("--limit", type=int, default=store_query.DEFAULT_LIMIT)
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    for cmd in (ls, show, export):
        cmd.add_argument("--config", help=f"TOML file (default: ${config.ENV_CONFIG})")


def run(args: argparse.Namespace, cfg: config.Config, out: TextIO = sys.stdout) -> int:
    return answering(lambda: _run(args, cfg, out))


def answering(question: Callable[[], int]) -> int:
    """A question to the store from the command line: a bad one exits 2 naming the
    option, a store that cannot be read exits 1 (the API's 400 and 503)."""
    try:
        return question()
    except store_query.QueryError as exc:
        print(f"pbxbridge: --{exc.parameter}: {exc.message}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"pbxbridge: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, cfg: config.Config, out: TextIO) -> int:
    tz = cfg.pbx.zone
    target = Target(cfg.outbox.path, cfg.store.url)
    with open_reader(target) as reader:
        if args.calls_command == "show":
            doc = reader.call(args.call_id)
            if doc is None:
                print(f"pbxbridge: no call {args.call_id!r} in the store", file=sys.stderr)
                return 1
            print(json.dumps(json.loads(doc), ensure_ascii=False, indent=2), file=out)
            return 0
        params = {"from": args.from_, "to": args.to}
        params |= {k: getattr(args, k) for k in store_query.CALL_FILTERS}
        if args.calls_command == "list":
            params["limit"] = str(args.limit)
        page = store_query.parse_calls({k: v for k, v in params.items() if v}, tz)
        if args.calls_command == "list":
            _table(reader.calls(page), tz, out)
        elif args.format == "csv":
            rows = store_query.CsvRows(tz)
            out.write(rows.header())
            for calls in _pages(reader, page):
                out.write(rows.page(calls))
        else:
            for calls in _pages(reader, page):
                out.writelines(json.dumps(c, ensure_ascii=False) + "\n" for c in calls)
    return 0


def _pages(reader: Reader, page: store_query.Page) -> Iterator[list[dict[str, Any]]]:
    for rows in reader.pages(store_query.Page(page.query, _PAGE, page.after)):
        yield [json.loads(doc) for doc, _, _ in rows]


def _table(rows: list[tuple[str, float, str]], tz: ZoneInfo, out: TextIO) -> None:
    print(
        f"{'offered at (local)':<33} {'outcome':<12} {'answer s':>8}  {'agent':<14} call id",
        file=out,
    )
    for doc, _, call_id in rows:
        c = json.loads(doc)
        answer = "" if c["answer_seconds"] is None else f"{c['answer_seconds']:.1f}"
        print(
            f"{store_query.local_time(c['offered_at'], tz):<33} {c['outcome'] or 'open':<12} "
            f"{answer:>8}  {c['agent'] or '-':<14} {call_id}",
            file=out,
        )
    print(f"{len(rows)} calls", file=out)
