"""Command line: ``pbxbridge run | replay | check-config``. ``main()`` returns an exit code."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pbxbridge import app, config, logs, replay
from pbxbridge import tracker as tr
from pbxbridge.incidents import call_json


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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "replay":
        return _replay(args)
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
    logs.configure(cfg.log.level, show_caller_numbers=cfg.log.show_caller_numbers)
    return asyncio.run(_run(cfg))


async def _run(cfg: config.Config) -> int:
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)
    return await app.run(cfg, shutdown)


def _replay(args: argparse.Namespace) -> int:
    settings = tr.TrackerSettings(pbx_name="pbx")
    if args.config:
        try:
            settings = app.tracker_settings(config.load(args.config))
        except config.ConfigError as exc:
            print(f"pbxbridge: {args.config}: {exc}", file=sys.stderr)
            return 1
    if args.pbx_name:
        settings = tr.TrackerSettings(
            args.pbx_name, settings.emergency_queues, settings.default_service
        )
    if args.emergency_queue:
        settings = tr.TrackerSettings(
            settings.pbx_name, frozenset(args.emergency_queue), settings.default_service
        )
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


if __name__ == "__main__":
    sys.exit(main())
