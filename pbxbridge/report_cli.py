"""``pbxbridge report``: the monthly report from the call store, read directly (the
daemon may be stopped), with the API's questions and errors (store_query)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pbxbridge import calls_cli, config, report, store_query
from pbxbridge.store_read import Target, open_reader


def add_parser(sub: Any) -> None:
    rp = sub.add_parser("report", help="the service report of a period: HTML, PDF or JSON")
    rp.add_argument("--config", help=f"TOML file (default: ${config.ENV_CONFIG})")
    rp.add_argument("--from", dest="from_", metavar="DATE", help="first local day (YYYY-MM-DD)")
    rp.add_argument("--to", metavar="DATE", help="last local day, included (YYYY-MM-DD)")
    rp.add_argument(
        "--lang", choices=store_query.REPORT_LANGUAGES, help="default: [report] language"
    )
    rp.add_argument("--format", choices=store_query.REPORT_FORMATS, default="html")
    rp.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")


def run(args: argparse.Namespace, cfg: config.Config) -> int:
    return calls_cli.answering(lambda: _run(args, cfg))


def _run(args: argparse.Namespace, cfg: config.Config) -> int:
    params = {"from": args.from_ or "", "to": args.to or "", "format": args.format}
    if args.lang:
        params["lang"] = args.lang
    query = store_query.parse_report(params, cfg.report.language)
    with open_reader(Target(cfg.outbox.path, cfg.store.url)) as reader:
        data = report.make(reader, query, report.center_of(cfg), time.time())
    if args.output:
        out = Path(args.output)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(out)  # a reader never sees half a report
        print(f"pbxbridge: report written to {out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
