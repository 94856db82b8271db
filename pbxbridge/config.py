"""Configuration: one TOML file, read once, validated once, frozen.

Every problem is collected (not just the first) and names its location, e.g.
``[ami] port: expected an integer``. An unknown key is an error: a typo must not
silently fall back to a default on an emergency system. Secrets come from the file,
a ``*_file`` key or an environment variable, and never appear in an error message.
"""

from __future__ import annotations

import math
import os
import ssl
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbxbridge import dialplan_vars as dv
from pbxbridge.ami_items import AmiSettings
from pbxbridge.ami_translate import WANTED_EVENTS
from pbxbridge.delivery import CONNECT_TIMEOUT_SECONDS, DeliverySettings
from pbxbridge.tracker import TrackerSettings

ENV_CONFIG = "PBXBRIDGE_CONFIG"
ENV_AMI_SECRET = "PBXBRIDGE_AMI_SECRET"
ENV_BACKEND_TOKEN = "PBXBRIDGE_BACKEND_TOKEN"
ENV_SIGNING_SECRET = "PBXBRIDGE_SIGNING_SECRET"
ENV_API_TOKEN = "PBXBRIDGE_API_TOKEN"
# systemd's RuntimeDirectory= sets this; the local API socket lives there.
ENV_RUNTIME_DIRECTORY = "RUNTIME_DIRECTORY"
DEFAULT_RUNTIME_DIRECTORY = "/run/pbxbridge"
API_SOCKET_FILE = "api.sock"
# systemd's StateDirectory= sets this; the outbox lives there unless [outbox] path says so.
ENV_STATE_DIRECTORY = "STATE_DIRECTORY"
DEFAULT_STATE_DIRECTORY = "/var/lib/pbxbridge"
OUTBOX_FILE = "outbox.sqlite3"


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PbxConfig:
    name: str = "pbx"


@dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "pbxbridge"
    secret: str = field(default="", repr=False)
    ping_interval_seconds: float = 3.0
    ping_timeout_seconds: float = 5.0


@dataclass(frozen=True)
class EmergencyConfig:
    queues: tuple[str, ...] = ()
    service: str = "112"
    max_call_seconds: float = 4 * 3600.0
    categories: tuple[str, ...] = dv.DEFAULT_CATEGORIES
    agencies: Mapping[str, str] = field(default_factory=lambda: dict(dv.DEFAULT_AGENCIES))


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9112"

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    # Caller numbers are personal data: logs keep only the last 3 digits unless the
    # operator decides otherwise.
    show_caller_numbers: bool = False


@dataclass(frozen=True)
class BackendConfig:
    """Where incidents are POSTed. Without ``url`` the outbox still records every event
    (pending) and nothing is delivered until a url is configured."""

    url: str | None = None
    token: str = field(default="", repr=False)
    signing_secret: str = field(default="", repr=False)
    ca_file: str | None = None
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class OutboxConfig:
    path: str = f"{DEFAULT_STATE_DIRECTORY}/{OUTBOX_FILE}"
    retention_hours: float = 168.0


@dataclass(frozen=True)
class ApiConfig:
    """Who may see and claim callers (README, "Who may see and claim callers")."""

    # The call takers' AGI script and the CLI: list and claim, on a unix socket that only
    # socket_group (the group Asterisk runs as) may open.
    socket: str = f"{DEFAULT_RUNTIME_DIRECTORY}/{API_SOCKET_FILE}"
    socket_group: str = "asterisk"
    # Remote readers over the TCP listener ([metrics] listen): read-only, with this token.
    token: str = field(default="", repr=False)
    # More Host names the TCP listener answers to (a DNS name for it, "pbx1:9112").
    allowed_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    pbx: PbxConfig = PbxConfig()
    ami: AmiConfig = AmiConfig()
    emergency: EmergencyConfig = EmergencyConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    backend: BackendConfig = BackendConfig()
    outbox: OutboxConfig = OutboxConfig()
    api: ApiConfig = ApiConfig()


Check = Callable[[Any], str | None]  # returns a problem description or None


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected a string"


def _nonempty(v: Any) -> str | None:
    return _str(v) or (None if v.strip() else "must not be empty")


def _port(v: Any) -> str | None:
    if not isinstance(v, int) or isinstance(v, bool):
        return "expected an integer"
    return None if 0 < v < 65536 else "expected a port number 1-65535"


def _between(high: float, unit: str) -> Check:
    """A finite number in (0, high]: inf, nan and absurd values are errors, so a typo can
    never disable a timeout or a limit."""

    def check(v: Any) -> str | None:
        if not isinstance(v, int | float) or isinstance(v, bool):
            return "expected a number"
        if not math.isfinite(v):
            return "expected a finite number"
        if v <= 0:
            return "must be greater than 0"
        return None if v <= high else f"must be at most {high:g} {unit}"

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected true or false"


def _str_list(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        return "expected a list of non-empty strings"
    return None


def _token(v: Any) -> str | None:
    # The service name becomes a metric label and travels in a UserEvent.
    if _nonempty(v):
        return _nonempty(v)
    ok = all(c.isascii() and (c.isalnum() or c in "_-") for c in v)
    return None if ok else "only letters, digits, '_' and '-' are allowed"


def _token_list(v: Any) -> str | None:
    if not isinstance(v, list) or not v:
        return "expected a non-empty list of names"
    bad = [x for x in v if not isinstance(x, str) or _token(x)]
    return f"{len(bad)} entries are not names of letters, digits, '_' or '-'" if bad else None


def _agency_map(v: Any) -> str | None:
    if not isinstance(v, dict):
        return 'expected a table of number = "agency", e.g. {"110" = "police"}'
    for number, agency in v.items():
        if not number.isdigit():
            return f"{number!r}: expected a dialled number (digits)"
        if not isinstance(agency, str) or _token(agency):
            return f"{number}: expected an agency name of letters, digits, '_' or '-'"
    return None


def _listen(v: Any) -> str | None:
    if _nonempty(v):
        return _nonempty(v)
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return 'expected "host:port", e.g. "127.0.0.1:9112"'
    return None


def _url(v: Any) -> str | None:
    # The value is not echoed: a URL may carry credentials.
    if _nonempty(v):
        return _nonempty(v)
    parts = urllib.parse.urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL"
    return None


def _level(v: Any) -> str | None:
    levels = ("debug", "info", "warning", "error")
    return _str(v) or (None if v in levels else f"expected one of {', '.join(levels)}")


# section -> key -> check. The single list of what a config file may contain.
SCHEMA: Mapping[str, Mapping[str, Check]] = {
    "pbx": {"name": _token},
    "ami": {
        "host": _nonempty,
        "port": _port,
        "username": _nonempty,
        "secret": _nonempty,
        "secret_file": _nonempty,
        "ping_interval_seconds": _between(300, "seconds"),
        "ping_timeout_seconds": _between(300, "seconds"),
    },
    "emergency": {
        "queues": _str_list,
        "service": _token,
        "max_call_seconds": _between(7 * 86400, "seconds"),
        "categories": _token_list,
        "agencies": _agency_map,
    },
    "metrics": {"listen": _listen},
    "log": {"level": _level, "show_caller_numbers": _bool},
    "backend": {
        "url": _url,
        "token": _nonempty,
        "token_file": _nonempty,
        "signing_secret": _nonempty,
        "signing_secret_file": _nonempty,
        "ca_file": _nonempty,
        "timeout_seconds": _between(300, "seconds"),
    },
    "outbox": {"path": _nonempty, "retention_hours": _between(24 * 3650, "hours")},
    "api": {
        "socket": _nonempty,
        "socket_group": _nonempty,
        "token": _nonempty,
        "token_file": _nonempty,
        "allowed_hosts": _str_list,
    },
}


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{path}: not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"]
        ) from None
    return from_dict(raw, env, base=Path(path).parent)


def from_dict(raw: Mapping[str, Any], env: Mapping[str, str], base: Path = Path()) -> Config:
    problems: list[str] = []
    for section, body in raw.items():
        if section not in SCHEMA:
            problems.append(f"[{section}]: unknown section")
        elif not isinstance(body, dict):
            problems.append(f"[{section}]: expected a table")
        else:
            for key, value in body.items():
                check = SCHEMA[section].get(key)
                if check is None:
                    problems.append(f"[{section}] {key}: unknown key")
                elif (why := check(value)) is not None:
                    problems.append(f"[{section}] {key}: {why}")
    if problems:
        raise ConfigError(problems)

    def sec(name: str) -> dict[str, Any]:
        body = raw.get(name, {})
        return dict(body) if isinstance(body, dict) else {}

    ami = sec("ami")
    secret = _secret(
        ami,
        "secret",
        from_env=env.get(ENV_AMI_SECRET),
        base=base,
        section="ami",
        problems=problems,
    )
    ami.pop("secret_file", None)
    ami["secret"] = secret
    if not secret and not any(p.startswith("[ami] secret") for p in problems):
        problems.append(f"[ami] secret: missing (set secret, secret_file or ${ENV_AMI_SECRET})")
    emergency = sec("emergency")
    for key in ("queues", "categories"):
        if key in emergency:
            emergency[key] = tuple(emergency[key])
    backend = _backend(sec("backend"), env, base, problems)
    outbox = _outbox(sec("outbox"), env, base)
    api = _api(sec("api"), env, base, problems)
    metrics = MetricsConfig(**sec("metrics"))
    if not api.token and metrics.host not in LOOPBACK_HOSTS:
        problems.append(
            f"[metrics] listen: {metrics.host} is not loopback: set [api] token (token_file, "
            f"${ENV_API_TOKEN}) so that the API on it is not open"
        )
    if problems:
        raise ConfigError(problems)
    return Config(
        pbx=PbxConfig(**sec("pbx")),
        ami=AmiConfig(**ami),
        emergency=EmergencyConfig(**emergency),
        metrics=metrics,
        log=LogConfig(**sec("log")),
        backend=backend,
        outbox=outbox,
        api=api,
    )


def _backend(
    body: dict[str, Any], env: Mapping[str, str], base: Path, problems: list[str]
) -> BackendConfig:
    for key, env_name in (("token", ENV_BACKEND_TOKEN), ("signing_secret", ENV_SIGNING_SECRET)):
        value = _secret(
            body, key, from_env=env.get(env_name), base=base, section="backend", problems=problems
        )
        body.pop(f"{key}_file", None)
        body[key] = value
    if "ca_file" in body:
        path = base / body["ca_file"]
        try:
            ssl.create_default_context(cafile=str(path))
        except ssl.SSLError as exc:  # before OSError, its base class
            problems.append(f"[backend] ca_file: {path} holds no usable certificate ({exc.reason})")
        except OSError as exc:
            problems.append(f"[backend] ca_file: cannot read {path}: {exc.strerror}")
        body["ca_file"] = str(path)
    return BackendConfig(**body)


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _api(
    body: dict[str, Any], env: Mapping[str, str], base: Path, problems: list[str]
) -> ApiConfig:
    token = _secret(
        body, "token", from_env=env.get(ENV_API_TOKEN), base=base, section="api", problems=problems
    )
    body.pop("token_file", None)
    body["token"] = token
    if "socket" in body:
        body["socket"] = str(base / body["socket"])
    else:
        runtime = env.get(ENV_RUNTIME_DIRECTORY, "").split(":")[0] or DEFAULT_RUNTIME_DIRECTORY
        body["socket"] = str(Path(runtime) / API_SOCKET_FILE)
    if "allowed_hosts" in body:
        body["allowed_hosts"] = tuple(body["allowed_hosts"])
    return ApiConfig(**body)


def _outbox(body: dict[str, Any], env: Mapping[str, str], base: Path) -> OutboxConfig:
    if "path" in body:
        body["path"] = str(base / body["path"])
    else:
        state_dir = env.get(ENV_STATE_DIRECTORY, "").split(":")[0] or DEFAULT_STATE_DIRECTORY
        body["path"] = str(Path(state_dir) / OUTBOX_FILE)
    return OutboxConfig(**body)


def _secret(
    body: dict[str, Any],
    key: str,
    *,
    from_env: str | None,
    base: Path,
    section: str,
    problems: list[str],
) -> str:
    """A secret from the file itself, the environment, or ``<key>_file`` (in that order:
    the environment overrides the file so an operator can check a config whose file only
    the service can read).

    Errors name the key and the file path, never the secret.
    """
    if key in body and f"{key}_file" in body:
        problems.append(f"[{section}] {key}: set either {key} or {key}_file, not both")
        return ""
    if key in body:
        return str(body[key])
    if from_env:
        return from_env
    file_name = body.get(f"{key}_file")
    if file_name:
        path = base / file_name
        try:
            value = path.read_text().strip()
        except OSError as exc:
            problems.append(f"[{section}] {key}_file: cannot read {path}: {exc.strerror}")
            return ""
        if not value:
            problems.append(f"[{section}] {key}_file: {path} is empty")
        return str(value)
    return ""


# -- the settings objects of the components, built here and nowhere else -------------


def ami_settings(config: Config) -> AmiSettings:
    c = config.ami
    return AmiSettings(
        host=c.host,
        port=c.port,
        username=c.username,
        secret=c.secret,
        ping_interval=c.ping_interval_seconds,
        ping_timeout=c.ping_timeout_seconds,
        wanted_events=WANTED_EVENTS,
    )


def tracker_settings(config: Config) -> TrackerSettings:
    e = config.emergency
    return TrackerSettings(
        pbx_name=config.pbx.name,
        emergency_queues=frozenset(e.queues),
        default_service=e.service,
        max_call_seconds=e.max_call_seconds,
        categories=frozenset(e.categories),
        agencies=dict(e.agencies),
    )


def delivery_settings(config: Config) -> DeliverySettings:
    b = config.backend
    return DeliverySettings(
        url=b.url,
        token=b.token,
        signing_secret=b.signing_secret,
        ca_file=b.ca_file,
        timeout_seconds=b.timeout_seconds,
        connect_timeout_seconds=min(CONNECT_TIMEOUT_SECONDS, b.timeout_seconds),
    )


def config_path(cli_value: str | None, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return cli_value or env.get(ENV_CONFIG)
