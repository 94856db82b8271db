"""Configuration: read once, validated once; every problem named, secrets never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pbxbridge import config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "pbxbridge.toml"
SECRET = "s3cr3t-value-never-shown"


def check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "pbxbridge.toml"
    path.write_text(text)
    try:
        config.load(path, env=env or {})
    except config.ConfigError as exc:
        return exc.problems
    return []


def test_the_documented_example_is_valid() -> None:
    """config/pbxbridge.toml (with the secret from the environment) passes validation."""
    cfg = config.load(EXAMPLE, env={config.ENV_AMI_SECRET: SECRET})
    assert cfg.ami.secret == SECRET
    assert cfg.emergency.agencies["113"] == "fire"
    assert "prank" in cfg.emergency.categories
    assert SECRET not in repr(cfg)


BAD = {
    "unknown section": ("[amii]\nhost = 'x'\n", "[amii]: unknown section"),
    "unknown key": ("[ami]\nsecret='x'\nprot = 5038\n", "[ami] prot: unknown key"),
    "wrong type": ("[ami]\nsecret='x'\nport = '5038'\n", "[ami] port: expected an integer"),
    "port range": ("[ami]\nsecret='x'\nport = 70000\n", "[ami] port: expected a port number"),
    "bad listen": ("[ami]\nsecret='x'\n[metrics]\nlisten = 'nowhere'\n", "[metrics] listen"),
    "bad service": ("[ami]\nsecret='x'\n[emergency]\nservice = '1 12'\n", "[emergency] service"),
    "bad agencies": (
        "[ami]\nsecret='x'\n[emergency]\nagencies = { police = '110' }\n",
        "[emergency] agencies",
    ),
    "no secret": ("[ami]\nhost = '127.0.0.1'\n", "[ami] secret: missing"),
    "both secrets": ("[ami]\nsecret='x'\nsecret_file='f'\n", "set either secret or secret_file"),
    "missing secret file": ("[ami]\nsecret_file = 'nope'\n", "[ami] secret_file: cannot read"),
    "bad backend url": ("[ami]\nsecret='x'\n[backend]\nurl = 'ftp://x'\n", "[backend] url"),
    "not toml": ("[ami\n", "not valid TOML"),
    "infinite ping": (
        "[ami]\nsecret='x'\nping_interval_seconds = inf\n",
        "[ami] ping_interval_seconds: expected a finite number",
    ),
    "nan timeout": (
        "[ami]\nsecret='x'\nping_timeout_seconds = nan\n",
        "[ami] ping_timeout_seconds: expected a finite number",
    ),
    "absurd timeout": (
        "[ami]\nsecret='x'\n[backend]\ntimeout_seconds = 1e9\n",
        "[backend] timeout_seconds: must be at most 300 seconds",
    ),
    "unknown time zone": (
        "[ami]\nsecret='x'\n[pbx]\ntimezone = 'Asia/Semarang'\n",
        "[pbx] timezone: 'Asia/Semarang' is not an IANA time zone",
    ),
    "store url not postgresql": (
        "[ami]\nsecret='x'\n[store]\nurl = 'mysql://u@h/db'\n",
        '[store] url: expected a "postgresql://',
    ),
    "negative retention": (
        "[ami]\nsecret='x'\n[store]\nretention_days = -1\n",
        "[store] retention_days",
    ),
    "garbage ca_file": (
        "[ami]\nsecret='x'\n[backend]\nca_file = 'pbxbridge.toml'\n",
        "[backend] ca_file: ",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_each_kind_of_bad_config_is_named(tmp_path: Path, kind: str) -> None:
    """A bad config is rejected with a message naming the key."""
    text, expected = BAD[kind]
    problems = check(tmp_path, text)
    assert any(expected in p for p in problems), problems


def test_the_store_url_is_a_secret_from_a_file_or_the_environment(tmp_path: Path) -> None:
    url = f"postgresql://pbxbridge:{SECRET}@db.example/pbxbridge"
    (tmp_path / "store-url").write_text(url + "\n")
    path = tmp_path / "pbxbridge.toml"
    path.write_text("[ami]\nsecret='x'\n[store]\nurl_file = 'store-url'\n")
    cfg = config.load(path, env={})
    assert cfg.store.url == url and SECRET not in repr(cfg)
    from_env = config.load(path, env={config.ENV_STORE_URL: "postgresql:///other"})
    assert from_env.store.url == "postgresql:///other"
    (tmp_path / "store-url").write_text("mysql://u:" + SECRET + "@h/db\n")
    problems = check(tmp_path, path.read_text())
    assert problems == ['[store] url: expected a "postgresql://user@host/database" URL']


def test_the_center_time_zone_defaults_to_the_hosts(tmp_path: Path) -> None:
    cfg = config.load(EXAMPLE, env={config.ENV_AMI_SECRET: SECRET})
    assert cfg.pbx.timezone == config.host_timezone()
    assert cfg.pbx.zone.key == cfg.pbx.timezone
    assert check(tmp_path, "[ami]\nsecret='x'\n[pbx]\ntimezone = 'Asia/Jakarta'\n") == []


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    """check-config reports all problems, not just the first."""
    problems = check(tmp_path, "[ami]\nport = 'x'\nbogus = 1\n[nope]\n")
    assert len(problems) >= 3


def test_secrets_never_appear_in_problems(tmp_path: Path) -> None:
    """An invalid config that contains a secret never echoes it."""
    text = f"[ami]\nsecret = '{SECRET}'\nport = 'x'\n[backend]\nurl = 'ftp://{SECRET}@h'\n"
    problems = check(tmp_path, text)
    assert problems and not any(SECRET in p for p in problems)


def test_check_config_exits_0_or_1_and_lists_problems(tmp_path: Path) -> None:
    """`pbxbridge check-config` exits 0 on a good file, 1 with every problem on a bad one."""
    good = tmp_path / "good.toml"
    good.write_text(f"[ami]\nsecret = '{SECRET}'\n")
    bad = tmp_path / "bad.toml"
    bad.write_text(f"[ami]\nsecret = '{SECRET}'\nport = 'x'\nbogus = 1\n")
    cmd = [sys.executable, "-m", "pbxbridge.cli", "check-config", "--config"]
    ok = subprocess.run([*cmd, str(good)], capture_output=True, text=True, check=False)
    no = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0
    assert no.returncode == 1
    assert "[ami] port" in no.stderr and "[ami] bogus" in no.stderr
    assert SECRET not in no.stderr + no.stdout


def test_environment_overrides_an_unreadable_secret_file(tmp_path: Path) -> None:
    """$PBXBRIDGE_AMI_SECRET lets an operator check a config whose secret file only the
    service can read."""
    text = "[ami]\nsecret_file = '/run/credentials/none/ami-secret'\n"
    assert check(tmp_path, text, {config.ENV_AMI_SECRET: SECRET}) == []


def test_a_config_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 name the file and the offset, never a traceback."""
    path = tmp_path / "pbxbridge.toml"
    path.write_bytes(b'[pbx]\nname = "\xff"\n')
    with pytest.raises(config.ConfigError) as err:
        config.load(path, env={})
    assert err.value.problems == [f"{path}: not UTF-8 (byte 0xff at offset 14)"]


def test_a_ca_file_without_certificates_is_refused_by_check_config(tmp_path: Path) -> None:
    """check-config loads ca_file with ssl: a file holding no certificate is an error
    (it used to pass and then crash `run`)."""
    problems = check(tmp_path, "[ami]\nsecret='x'\n[backend]\nca_file = 'pbxbridge.toml'\n")
    assert problems == [
        f"[backend] ca_file: {tmp_path / 'pbxbridge.toml'} holds no usable certificate"
        " (NO_CERTIFICATE_OR_CRL_FOUND)"
    ]


def test_a_listener_beyond_loopback_needs_an_api_token(tmp_path: Path) -> None:
    """[metrics] listen on a LAN address without [api] token is an error naming both;
    with a token (here from the environment) it is accepted."""
    text = "[ami]\nsecret='x'\n[metrics]\nlisten = '0.0.0.0:9112'\n"
    problems = check(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith("[metrics] listen: 0.0.0.0")
    assert "[api] token" in problems[0]
    assert check(tmp_path, text, env={config.ENV_API_TOKEN: "t0ken"}) == []
