"""deploy/grafana/jsproj-dashboard.json asks Prometheus only for what the daemon exports: every query's metric
names and label names are checked against the /metrics of a real daemon following a real PostgreSQL, every
panel has a query, a panel's lines are told apart by their legends, and every exported metric has a panel."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from jsproj.follow.daemon.metrics import DaemonMetrics
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

from projections import counting, sources
from waiting import daemon_thread, wait_until

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "jsproj-dashboard.json"
#: The labels Prometheus adds to every series it scrapes (the target's), besides the daemon's own.
TARGET_LABELS = frozenset({"job", "instance"})

#: A PromQL token: a string, a range or subquery ``[...]``, a Grafana variable, a number or duration, a name,
#: or any other character.
TOKEN = re.compile(r""""(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|\[[^\]]*\]|\$\w+|\d[\d.]*(?:e[+-]?\d+)?[a-z]*|"""
                   r"""[A-Za-z_:][\w:]*|\S""")  # fmt: skip
NAME = re.compile(r"[A-Za-z_:][\w:]*")
#: Words followed by a list of label names.
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = GROUPING | {"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"}
LABEL_VALUES = re.compile(r"label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)")  # a Grafana variable's query
OUTER_BY = re.compile(r"^\s*\w+\s+by\s*\(([^)]*)\)")  # sum by (a, b) (...): one series per a, b
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass
class Query:
    """The metric names a PromQL expression selects (each with the labels its matchers name), and the labels
    its ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` lists name."""

    metrics: dict[str, set[str]] = field(default_factory=dict)
    grouping: set[str] = field(default_factory=set)


def parse(expr: str) -> Query:
    """What ``expr`` names. A name followed by ``(``, ``by`` or ``without`` is a function or an aggregation;
    any other name, not a keyword nor inside ``{...}`` or a grouping list, is a metric (a histogram's
    ``x_bucket``, ``x_sum``, ``x_count`` as they are stored)."""
    tokens, query, at = TOKEN.findall(expr), Query(), 0
    while at < len(tokens):
        word, following = tokens[at], tokens[at + 1 : at + 2]
        if word == "{":
            end = tokens.index("}", at)
            metric = tokens[at - 1] if at and tokens[at - 1] in query.metrics else None
            if metric is None:
                raise ValueError(f"a selector without a metric name: {expr}")
            query.metrics[metric] |= {t for t in tokens[at + 1 : end] if NAME.fullmatch(t)}
            at = end
        elif word.lower() in GROUPING and following == ["("]:
            end = tokens.index(")", at)
            query.grouping |= {t for t in tokens[at + 2 : end] if NAME.fullmatch(t)}
            at = end
        elif NAME.fullmatch(word) and word.lower() not in KEYWORDS and following not in (["("], ["by"], ["without"]):
            query.metrics.setdefault(word, set())
        at += 1
    return query


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, Query, str]]:
    """(where, what it names, its legend) for each panel target and each templated variable's query."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", parse(target["expr"]), target.get("legendFormat", "")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            text = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            found = LABEL_VALUES.fullmatch(text)
            assert found and found[1], f"variable {variable['name']}: label_values(metric, label) expected: {text}"
            query = parse(found[1])
            query.grouping.add(found[2])
            yield f"variable {variable['name']!r}", query, ""


def problems(dashboard: dict[str, Any], exported: dict[str, set[str]]) -> list[str]:
    """What the dashboard asks for that ``exported`` (sample name -> its label names) does not have."""
    found: list[str] = []
    for panel in dashboard["panels"]:
        if panel["type"] != "row" and not [t for t in panel.get("targets", []) if t.get("expr", "").strip()]:
            found.append(f"panel {panel['title']!r} has no query")
    for where, query, legend in queries(dashboard):
        if not query.metrics:
            found.append(f"{where} names no metric")
        for metric, labels in query.metrics.items():
            if metric not in exported:
                found.append(f"{where}: {metric} is not exported")
            elif labels - exported[metric] - TARGET_LABELS:
                found.append(f"{where}: {metric} has no label {sorted(labels - exported[metric])}")
        known = set(TARGET_LABELS).union(*(exported.get(metric, set()) for metric in query.metrics))
        if query.grouping - known:
            found.append(f"{where}: no metric of it has the label {sorted(query.grouping - known)}")
        if set(LEGEND_LABEL.findall(legend)) - known:
            found.append(f"{where}: its legend names a label no metric of it has: {legend}")
    return found


def lines_not_told_apart(dashboard: dict[str, Any]) -> list[str]:
    """The targets of one series per label set (``max by (projection) (...)``) whose legend leaves one out."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            outer = OUTER_BY.match(target["expr"])
            per = {label.strip() for label in outer[1].split(",")} if outer else set()
            if per - set(LEGEND_LABEL.findall(target.get("legendFormat", ""))):
                found.append(f"panel {panel['title']!r} {target['refId']}: legend {target.get('legendFormat')!r}")
    return found


def running(dsn: str, name: str) -> bool:
    """Whether the daemon follows ``name`` (its build done): an event appended now is applied in a page of its
    own, not by the build's last read (which counts no page)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select status from pge_projection_progress where name = %s", (name,)).fetchone()
    return row == ("running",)


def exposition(store: EventStore, dsn: str) -> dict[str, set[str]]:
    """The daemon's /metrics once it built a projection and then followed it a page (so that every family
    has samples: a build counts no pages): sample name -> the label names its samples carry."""
    deploy(store, sources(Count=counting("Count")), lifecycles={"Count": "async"})
    store.append({"id": "s-1", "type": "S", "data": {"$type": "Happened"}})
    hooks = DaemonMetrics()
    with daemon_thread(dsn, hooks=hooks) as worker, hooks.serve(worker) as server:

        def scrape() -> str:
            with urllib.request.urlopen(server.url + "/metrics", timeout=10) as answer:  # noqa: S310 -- loopback
                return str(answer.read().decode())

        wait_until(lambda: 'jsproj_projection_events_applied_total{projection="Count"} 1.0' in scrape())
        wait_until(lambda: running(dsn, "Count"))  # built and swapped in: the next event is followed, a page
        store.append({"id": "s-1", "type": "S", "data": {"$type": "Happened"}})
        wait_until(lambda: 'jsproj_projection_pages_applied_total{projection="Count"} 1.0' in scrape())
        text = scrape()
    exported: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    return exported


def test_every_query_names_metrics_and_labels_the_daemon_exports_and_every_metric_has_a_panel(
    store: EventStore, dsn: str
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exposition(store, dsn)
    assert {"jsproj_projection_lag_seconds", "jsproj_daemon_info"} <= set(exported), "the exposition was read"
    assert exported["jsproj_projection_lag_seconds"] == {"projection"}
    assert problems(dashboard, exported) == []
    named = {metric for _, query, _ in queries(dashboard) for metric in query.metrics}
    assert sorted(set(exported) - named) == [], "an exported metric no panel shows"


def documented_alerts() -> dict[str, Query]:
    """The alert rules docs/daemon.md gives operators to start from: name -> what its expression names."""
    text = (DASHBOARD.parents[2] / "docs" / "daemon.md").read_text()
    return {name: parse(expr) for name, expr in re.findall(r"- alert: (\w+)\n\s+(?:#.*\n\s+)?expr: (.+)", text)}


def test_the_documented_alert_rules_name_metrics_and_labels_the_daemon_exports(store: EventStore, dsn: str) -> None:
    alerts = documented_alerts()
    assert set(alerts) == {"JsprojProjectionLagging", "JsprojProjectionStopped", "JsprojDaemonDown"}
    exported = {**exposition(store, dsn), "up": {"job", "instance"}}  # Prometheus' own, per scrape target
    for name, query in alerts.items():
        for metric, labels in query.metrics.items():
            assert metric in exported and labels <= exported[metric] | TARGET_LABELS, (name, metric)
        assert query.grouping <= set().union(*(exported[m] for m in query.metrics)), name
    assert "up" in alerts["JsprojDaemonDown"].metrics, "a daemon whose process is gone exports no 0"


def test_every_panel_tells_its_lines_apart_by_their_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert lines_not_told_apart(dashboard) == []
    lag = next(p for p in dashboard["panels"] if p["title"] == "Lag (seconds) by projection")
    assert "{{projection}}" in lag["targets"][0]["legendFormat"]


def test_the_dashboard_picks_its_prometheus_and_filters_by_schema_and_projection() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"schema", "projection"} <= set(variables)
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all('schema=~"$schema"' in target["expr"] for target in panel["targets"]), panel["title"]


def test_parse_finds_metrics_and_labels_past_functions_ranges_and_grouping() -> None:
    query = parse('sum by (projection) (rate(jsproj_x_total{projection=~"$p", job!="a"}[$__rate_interval])) * 60')
    assert query == Query({"jsproj_x_total": {"projection", "job"}}, {"projection"})
    query = parse("histogram_quantile(0.9, sum without (instance) (rate(page_seconds_bucket[5m] offset 1h)))")
    assert query == Query({"page_seconds_bucket": set()}, {"instance"})
    query = parse("a * on (job) group_left (id) b or vector(0) > bool 1e3")
    assert query == Query({"a": set(), "b": set()}, {"job", "id"})


def test_a_made_up_metric_or_label_is_reported() -> None:
    exported = {"jsproj_projection_lag_seconds": {"projection"}}
    dashboard = {
        "panels": [
            {"type": "timeseries", "title": "Made up", "targets": [
                {"refId": "A", "expr": "max by (shard) (jsproj_projection_lag_minutes)", "legendFormat": "{{shard}}"},
                {"refId": "B", "expr": 'jsproj_projection_lag_seconds{stream="x"}', "legendFormat": "{{projection}}"},
            ]},
            {"type": "stat", "title": "Empty", "targets": []},
        ],
        "templating": {"list": [{"name": "v", "type": "query", "query": "label_values(jsproj_nothing, projection)"}]},
    }  # fmt: skip
    assert problems(dashboard, exported) == [
        "panel 'Empty' has no query",
        "panel 'Made up' A: jsproj_projection_lag_minutes is not exported",
        "panel 'Made up' A: no metric of it has the label ['shard']",
        "panel 'Made up' A: its legend names a label no metric of it has: {{shard}}",
        "panel 'Made up' B: jsproj_projection_lag_seconds has no label ['stream']",
        "variable 'v': jsproj_nothing is not exported",
        "variable 'v': no metric of it has the label ['projection']",
    ]
