"""The dashboard's queries and the alert rules as data, and the PromQL helpers the deploy and Prometheus tests share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests import DASHBOARD, DEPLOY, PROMETHEUS_RULE

ADAPTER_VALUES = DEPLOY / "autoscaling" / "prometheus-adapter-values.yaml"
# Series Prometheus makes itself, not the services.
PROMETHEUS_BUILTIN_SERIES = {"up"}
# Metrics that Triton (nv_) and the redis_exporter sidecar (redis_) export, not service/.
EXTERNAL_METRIC_PREFIXES = ("nv_", "redis_")

_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
_PROMQL_WORDS |= {"offset", "inf", "nan"}
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


@dataclass(frozen=True)
class PanelQuery:
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str


def metric_names(expression: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations, $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", " ", text)  # numbers (1e6)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name not in _PROMQL_WORDS:
            names.add(name)
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_queries() -> list[PanelQuery]:
    return [
        PanelQuery(panel["id"], panel["title"], target["refId"], target["expr"])
        for panel in panels()
        for target in panel.get("targets", [])
    ]


def with_grafana_variables(expression: str, rate_interval: str, namespace: str = ".*") -> str:
    """The query as Grafana sends it: `$__rate_interval` and `$namespace` filled in."""
    return expression.replace("$__rate_interval", rate_interval).replace("$namespace", namespace)


def rule_file_text(path: Path = PROMETHEUS_RULE) -> str:
    """The PrometheusRule's spec as a plain Prometheus rule file (what the Operator hands Prometheus)."""
    spec = yaml.safe_load(path.read_text())["spec"]
    return yaml.safe_dump({"groups": spec["groups"]}, sort_keys=False)


def rules() -> list[dict[str, Any]]:
    spec = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]
    return [rule for group in spec["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def adapter_rules() -> list[dict[str, Any]]:
    """prometheus-adapter's custom-metric rules (Helm values `rules.custom`)."""
    custom: list[dict[str, Any]] = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]
    return custom


def adapter_query(rule: dict[str, Any], label_matchers: str, group_by: str) -> str:
    """The PromQL prometheus-adapter sends for `rule`, its Go-template fields filled in as the adapter does."""
    series = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"])
    assert series, rule["seriesQuery"]
    return (
        rule["metricsQuery"]
        .replace("<<.Series>>", series.group(1))
        .replace("<<.LabelMatchers>>", label_matchers)
        .replace("<<.GroupBy>>", group_by)
    )
