"""config/prometheus/pbxbridge.rules.yml checked and unit-tested by promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.tools import require

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "prometheus"
RULES = RULES_DIR / "pbxbridge.rules.yml"
TESTS = ("pbxbridge.rules.test.yml", "pbxbridge.rules.long.test.yml")


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rules_are_valid() -> None:
    """promtool check rules accepts every recording rule and alert."""
    run = promtool("check", "rules", RULES.name)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_rules_pass_their_unit_tests() -> None:
    """The service-level ratios, the quiet-hour NaN and every alert's firing time are as
    the promtool unit tests expect."""
    run = promtool("test", "rules", *TESTS)
    assert run.returncode == 0, run.stdout + run.stderr


def test_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests are not blind: an alert threshold of 79% instead of 90% fails them."""
    for name in (RULES.name, *TESTS):
        shutil.copy(RULES_DIR / name, tmp_path / name)
    rules = tmp_path / RULES.name
    text = rules.read_text()
    assert 'threshold="15"} < 0.90' in text
    rules.write_text(text.replace('threshold="15"} < 0.90', 'threshold="15"} < 0.79'))
    run = promtool("test", "rules", TESTS[0], cwd=tmp_path)
    assert run.returncode != 0
    assert "Pbxbridge112ServiceLevelBreached" in run.stdout + run.stderr
