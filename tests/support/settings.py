"""Component settings built the way the daemon builds them: through pbxbridge.config,
so a test never restates a default."""

from __future__ import annotations

import dataclasses
from typing import Any

from pbxbridge import config
from pbxbridge.ami_items import AmiSettings
from pbxbridge.delivery import DeliverySettings
from pbxbridge.tracker import TrackerSettings


def load(**sections: dict[str, Any]) -> config.Config:
    """A Config from TOML-shaped sections (the AMI secret is filled in)."""
    raw: dict[str, dict[str, Any]] = {"ami": {"secret": "test-secret"}}
    for name, body in sections.items():
        raw.setdefault(name, {}).update(body)
    return config.from_dict(raw, env={})


def tracker(
    pbx: str = "pbx", queues: tuple[str, ...] = ("q112",), **internal: Any
) -> TrackerSettings:
    """``internal``: the non-configurable bounds (remember_finished, ...) and
    ``max_call_seconds``."""
    emergency: dict[str, Any] = {"queues": list(queues)}
    if "max_call_seconds" in internal:
        emergency["max_call_seconds"] = internal.pop("max_call_seconds")
    built = config.tracker_settings(load(pbx={"name": pbx}, emergency=emergency))
    return dataclasses.replace(built, **internal)


def ami(host: str, port: int, **policy: Any) -> AmiSettings:
    """AMI settings for a loopback peer; ``policy``: ping, backoff and other fields."""
    ping = {k: policy.pop(k) for k in ("ping_interval", "ping_timeout") if k in policy}
    body: dict[str, Any] = {"host": host, "port": port, "username": "pbxbridge"}
    if "ping_interval" in ping:
        body["ping_interval_seconds"] = ping["ping_interval"]
    if "ping_timeout" in ping:
        body["ping_timeout_seconds"] = ping["ping_timeout"]
    if "secret" in policy:
        body["secret"] = policy.pop("secret")
    built = config.ami_settings(load(ami=body))
    return dataclasses.replace(built, **policy)


def delivery(url: str | None, **policy: Any) -> DeliverySettings:
    backend: dict[str, Any] = {} if url is None else {"url": url}
    for key in ("token", "signing_secret", "timeout_seconds"):
        if key in policy:
            backend[key] = policy.pop(key)
    built = config.delivery_settings(load(backend=backend))
    return dataclasses.replace(built, **policy)
