"""Command line: ``pbxbridge run | replay | check-config | outbox | callbacks | calls``.

``main()`` returns an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import json
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pbxbridge import app, calls_cli, config, local_api, logs, outbox, replay, report_cli
from pbxbridge import tracker as tr
from pbxbridge.incidents import call_json, rfc3339


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pbxbridge", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", help=f"TOML file (default: ${config.ENV_CONFIG})")
    check = sub.add_parser("check-config", help="validate a config file; exit 0 or 1")
    check.add_argument("--config", help=f"TOML file (default: ${config.ENV_CONFIG})")
    rp = sub.add_parser(
        "replay", help="run a raw AMI capture through the tracker; print one JSON record per call"
    )
    rp.add_argument("file", type=Path)
    rp.add_argument("--config", help="take pbx name and emergency queues from this file")
    rp.add_argument("--pbx-name", default=None)
    rp.add_argument("--emergency-queue", action="append", default=[])
    ob = sub.add_parser("outbox", help="inspect the incident outbox; redeliver parked events")
    ob_sub = ob.add_subparsers(dest="outbox_command", required=True)
    ls = ob_sub.add_parser("list", help="list events (oldest first)")
    retry = ob_sub.add_parser("retry", help="parked -> pending: one event, or all parked")
    retry.add_argument("event_id", nargs="?", metavar="EVENT_ID")
    for cmd in (ls, retry):
        cmd.add_argument("--config", help=f"TOML file (default: ${config.ENV_CONFIG})")
        cmd.add_argument("--outbox", metavar="PATH", help="the outbox file (instead of --config)")
    ls.add_argument("--state", choices=outbox.STATES)
    ls.add_argument("--limit", type=int, default=None)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.add_argument("--body", action="store_true", help="with --json: include the body")
    cbs = sub.add_parser("callbacks", help="abandoned callers still owed a call back")
    cbs.add_argument(
        "--api",
        default=local_api.DEFAULT_ADDRESS,
        help="the daemon's local API socket (default: %(default)s)",
    )
    cbs.add_argument("--json", action="store_true", help="one JSON object per line")
    calls_cli.add_parser(sub)
    report_cli.add_parser(sub)
    return p


def _callbacks(args: argparse.Namespace) -> int:
    """The running daemon's callback list, oldest first (GET /v1/callbacks)."""
    try:
        status, body = local_api.request(args.api, "GET", "/v1/callbacks", timeout=5)
        if status != 200:
            raise OSError(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        entries = json.loads(body)["callbacks"]
    except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
        print(f"pbxbridge: cannot read the callback list at {args.api}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        for entry in entries:
            print(json.dumps(entry))
        return 0
    print(f"{'abandoned at':<28} {'service':<8} {'number':<16} {'tries':>5}  claimed by  call id")
    for e in entries:
        print(
            f"{e['abandoned_at']:<28} {e['service']:<8} {e['number']:<16} {e['attempts']:>5}  "
            f"{e['claimed_by'] or '-':<10}  {e['call_id']}"
        )
    print(f"{len(entries)} pending")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "replay":
        return _replay(args)
    if args.command == "callbacks":
        return _callbacks(args)
    if args.command == "outbox" and args.outbox:
        return _outbox(args, args.outbox)
    path = config.config_path(args.config)
    if path is None:
        print(
            f"pbxbridge: no config: pass --config FILE or set ${config.ENV_CONFIG}", file=sys.stderr
        )
        return 1
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        print(f"pbxbridge: {path}: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    if args.command == "check-config":
        print(f"{path}: ok")
        return 0
    if args.command == "outbox":
        return _outbox(args, cfg.outbox.path)
    if args.command == "calls":
        return calls_cli.run(args, cfg)
    if args.command == "report":
        return report_cli.run(args, cfg)
    logs.configure(cfg.log.level, show_caller_numbers=cfg.log.show_caller_numbers)
    return asyncio.run(_run(cfg))


async def _run(cfg: config.Config) -> int:
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)
    return await app.run(cfg, shutdown)


def _replay(args: argparse.Namespace) -> int:
    settings = config.tracker_settings(config.Config())
    if args.config:
        try:
            settings = config.tracker_settings(config.load(args.config))
        except config.ConfigError as exc:
            print(f"pbxbridge: {args.config}: {exc}", file=sys.stderr)
            return 1
    # Options override the config's values; everything else (agencies, categories, ...)
    # stays as the config says.
    if args.pbx_name:
        settings = dataclasses.replace(settings, pbx_name=args.pbx_name)
    if args.emergency_queue:
        settings = dataclasses.replace(settings, emergency_queues=frozenset(args.emergency_queue))
    try:
        data = replay.strip_header(args.file.read_bytes())
    except OSError as exc:
        print(f"pbxbridge: {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    events = replay.events(replay.messages(replay.chunks(data)))
    for effect in tr.replay(events, settings):
        if isinstance(effect, tr.CallEnded):
            print(json.dumps(call_json(effect.record)))
    return 0


def _outbox(args: argparse.Namespace, path: str) -> int:
    """``outbox list`` / ``outbox retry``: safe while the daemon runs (WAL, busy timeout);
    the daemon picks retried events up within its poll interval (5 s)."""
    if not Path(path).exists():
        print(f"pbxbridge: {path}: no outbox there", file=sys.stderr)
        return 1
    try:
        db = outbox.OutboxDB(path)
    except (OSError, outbox.OutboxError, sqlite3.Error) as exc:
        print(f"pbxbridge: {path}: cannot open the outbox: {exc}", file=sys.stderr)
        return 1
    try:
        if args.outbox_command == "retry":
            n = db.retry(args.event_id, time.time())
            if args.event_id is not None and n == 0:
                print(f"pbxbridge: {args.event_id}: no such parked event", file=sys.stderr)
                return 1
            print(f"{n} event(s) back to pending")
            return 0
        rows = db.rows(args.state, args.limit)
    finally:
        db.close()
    if args.json:
        for r in rows:
            doc: dict[str, object] = {
                "event_id": r.event_id,
                "call_id": r.call_id,
                "type": r.type,
                "seq": r.seq,
                "state": r.state,
                "attempts": r.attempts,
                "occurred_at": rfc3339(r.occurred_at),
                "created_at": rfc3339(r.created_at),
                "next_attempt_at": rfc3339(r.next_attempt_at) if r.state == "pending" else None,
                "delivered_at": rfc3339(r.delivered_at),
                "last_error": r.last_error,
            }
            if args.body:
                doc["body"] = json.loads(r.body)
            print(json.dumps(doc, ensure_ascii=False))
        return 0
    table = [("STATE", "ATTEMPTS", "CREATED", "EVENT_ID", "LAST_ERROR")]
    table += [
        (r.state, str(r.attempts), rfc3339(r.created_at) or "", r.event_id, r.last_error or "")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[4]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
