"""The alert rules through Prometheus's own `promtool`: they load, and their unit tests (promtool/alerts_test.yaml:
each alert firing and not firing, the old SamDecoderErrorRatioHigh's double count and blind spot included) pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.manifests import require_tool
from tests.deploy.monitoring import alerts, rule_file_text

UNIT_TESTS = Path(__file__).parent / "promtool" / "alerts_test.yaml"


def _promtool(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *arguments], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rule_file_text())
    result = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_unit_tests_pass(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rule_file_text())
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    result = _promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_unit_tests_that_fire_it_and_that_do_not() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    assert firing == set(alerts()), set(alerts()) ^ firing
    assert silent == set(alerts()), set(alerts()) ^ silent
