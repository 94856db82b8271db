"""[backend] and [outbox] configuration: defaults, secrets, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxbridge import config

AMI = {"ami": {"secret": "ami-secret"}}


def test_defaults_keep_the_outbox_without_a_backend() -> None:
    """Without [backend] url nothing is delivered; the outbox sits in the state directory."""
    cfg = config.from_dict(AMI, env={"STATE_DIRECTORY": "/var/lib/pbxbridge-test"})
    assert cfg.backend.url is None
    assert cfg.backend.timeout_seconds == 5.0
    assert cfg.outbox.path == "/var/lib/pbxbridge-test/outbox.sqlite3"
    assert cfg.outbox.retention_hours == 168.0
    assert config.from_dict(AMI, env={}).outbox.path == "/var/lib/pbxbridge/outbox.sqlite3"


def test_secrets_from_files_and_environment(tmp_path: Path) -> None:
    """token/signing_secret come from the file, a *_file (relative to the config) or env."""
    (tmp_path / "token").write_text("tok-from-file\n")
    raw = {
        **AMI,
        "backend": {"url": "https://dispatch.example/incidents", "token_file": "token"},
        "outbox": {"path": "state/outbox.sqlite3", "retention_hours": 24},
    }
    env = {"PBXBRIDGE_SIGNING_SECRET": "sig-from-env"}
    cfg = config.from_dict(raw, env=env, base=tmp_path)
    assert cfg.backend.token == "tok-from-file"
    assert cfg.backend.signing_secret == "sig-from-env"
    assert cfg.outbox.path == str(tmp_path / "state/outbox.sqlite3")
    assert "tok-from-file" not in repr(cfg) and "sig-from-env" not in repr(cfg)


def test_problems_name_their_location_and_never_the_secret(tmp_path: Path) -> None:
    """Each bad [backend] key is reported with its location, without echoing secrets."""
    raw = {
        **AMI,
        "backend": {
            "url": "ftp://user:hunter2@x/",
            "token": "hunter3",
            "token_file": "t",
            "ca_file": "missing-ca.pem",
            "timeout_seconds": 0,
            "colour": "red",
        },
    }
    with pytest.raises(config.ConfigError) as err:
        config.from_dict(raw, env={}, base=tmp_path)
    problems = err.value.problems
    assert "[backend] url: expected an http:// or https:// URL" in problems
    assert "[backend] timeout_seconds: must be greater than 0" in problems
    assert "[backend] colour: unknown key" in problems
    raw["backend"] = {"token": "hunter3", "token_file": "t", "ca_file": "missing-ca.pem"}
    with pytest.raises(config.ConfigError) as err:
        config.from_dict(raw, env={}, base=tmp_path)
    problems = err.value.problems
    assert "[backend] token: set either token or token_file, not both" in problems
    assert any(p.startswith("[backend] ca_file: cannot read") for p in problems)
    assert "hunter" not in str(err.value)
