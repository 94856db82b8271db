"""Configuration: one TOML file, read once, validated once, frozen.

Every problem is collected (not just the first) and names its location, e.g.
``[ami] port: expected an integer``. An unknown key is an error: a typo must not
silently fall back to a default on an emergency system. Secrets come from the file,
a ``*_file`` key or an environment variable, and never appear in an error message.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge import config_checks as checks
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
ENV_STORE_URL = "PBXBRIDGE_STORE_URL"
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


def host_timezone() -> str:
    """The host's IANA zone (Debian: /etc/timezone, or the /etc/localtime link), else UTC."""
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name:
            return name
    except OSError:
        pass
    target = os.path.realpath("/etc/localtime")
    _, found, name = target.partition("/zoneinfo/")
    return name if found and name else "UTC"


@dataclass(frozen=True)
class PbxConfig:
    name: str = "pbx"
    # The center's zone: the days and hours of queries, exports and reports.
    timezone: str = field(default_factory=host_timezone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


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
class StoreConfig:
    """The call store: in the outbox's file, and also in PostgreSQL when ``url`` is set."""

    url: str | None = field(default=None, repr=False)  # may carry a password
    retention_days: float = 1825.0

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400.0


@dataclass(frozen=True)
class ReportConfig:
    """The monthly report (README, "The monthly report")."""

    language: str = "id"  # what a report is in unless asked otherwise: id | en


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
    # Serve the read API on its own address instead of [metrics] listen.
    listen: str | None = None

    @property
    def host_port(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Config:
    pbx: PbxConfig = PbxConfig()
    ami: AmiConfig = AmiConfig()
    emergency: EmergencyConfig = EmergencyConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    backend: BackendConfig = BackendConfig()
    outbox: OutboxConfig = OutboxConfig()
    store: StoreConfig = StoreConfig()
    report: ReportConfig = ReportConfig()
    api: ApiConfig = ApiConfig()


# section -> key -> check. The single list of what a config file may contain.
SCHEMA: Mapping[str, Mapping[str, checks.Check]] = {
    "pbx": {"name": checks.token, "timezone": checks.timezone},
    "ami": {
        "host": checks.nonempty,
        "port": checks.port,
        "username": checks.nonempty,
        "secret": checks.nonempty,
        "secret_file": checks.nonempty,
        "ping_interval_seconds": checks.between(300, "seconds"),
        "ping_timeout_seconds": checks.between(300, "seconds"),
    },
    "emergency": {
        "queues": checks.string_list,
        "service": checks.token,
        "max_call_seconds": checks.between(7 * 86400, "seconds"),
        "categories": checks.token_list,
        "agencies": checks.agency_map,
    },
    "metrics": {"listen": checks.listen},
    "log": {"level": checks.level, "show_caller_numbers": checks.boolean},
    "backend": {
        "url": checks.url,
        "token": checks.nonempty,
        "token_file": checks.nonempty,
        "signing_secret": checks.nonempty,
        "signing_secret_file": checks.nonempty,
        "ca_file": checks.nonempty,
        "timeout_seconds": checks.between(300, "seconds"),
    },
    "outbox": {"path": checks.nonempty, "retention_hours": checks.between(24 * 3650, "hours")},
    "store": {
        "url": checks.postgresql_url,
        "url_file": checks.nonempty,
        "retention_days": checks.between(36500, "days"),
    },
    "report": {"language": checks.one_of("id", "en")},
    "api": {
        "socket": checks.nonempty,
        "socket_group": checks.nonempty,
        "token": checks.nonempty,
        "token_file": checks.nonempty,
        "allowed_hosts": checks.string_list,
        "listen": checks.listen,
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
    store = _store(sec("store"), env, base, problems)
    metrics = MetricsConfig(**sec("metrics"))
    api_where = api.host_port
    if api_where is not None and not api.token and api_where[0] not in LOOPBACK_HOSTS:
        problems.append(
            f"[api] listen: {api_where[0]} is not loopback: set [api] token (token_file, "
            f"${ENV_API_TOKEN}) so that the API on it is not open"
        )
    if api_where is None and not api.token and metrics.host not in LOOPBACK_HOSTS:
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
        store=store,
        report=ReportConfig(**sec("report")),
        api=api,
    )


def _backend(
    body: dict[str, Any], env: Mapping[str, str], base: Path, problems: list[str]
) -> BackendConfig:
    for key, env_name in (("token", ENV_BACKEND_TOKEN), ("signing_secret", ENV_SIGNING_SECRET)):
        body[key] = _secret(
            body, key, from_env=env.get(env_name), base=base, section="backend", problems=problems
        )
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
    body["token"] = _secret(
        body, "token", from_env=env.get(ENV_API_TOKEN), base=base, section="api", problems=problems
    )
    if "socket" in body:
        body["socket"] = str(base / body["socket"])
    else:
        runtime = env.get(ENV_RUNTIME_DIRECTORY, "").split(":")[0] or DEFAULT_RUNTIME_DIRECTORY
        body["socket"] = str(Path(runtime) / API_SOCKET_FILE)
    if "allowed_hosts" in body:
        body["allowed_hosts"] = tuple(body["allowed_hosts"])
    return ApiConfig(**body)


def _store(
    body: dict[str, Any], env: Mapping[str, str], base: Path, problems: list[str]
) -> StoreConfig:
    url = _secret(
        body, "url", from_env=env.get(ENV_STORE_URL), base=base, section="store", problems=problems
    )
    if url and (why := checks.postgresql_url(url)) is not None:
        problems.append(f"[store] url: {why}")
    body["url"] = url or None
    return StoreConfig(**body)


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
    the service can read). ``<key>_file`` leaves ``body``: the caller sets ``<key>``.

    Errors name the key and the file path, never the secret.
    """
    file_name = body.pop(f"{key}_file", None)
    if key in body and file_name is not None:
        problems.append(f"[{section}] {key}: set either {key} or {key}_file, not both")
        return ""
    if key in body:
        return str(body[key])
    if from_env:
        return from_env
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
