#!/usr/bin/env python3
"""Checks Prometheus alert rules (and optionally a Grafana dashboard) against the metric names
healthlake really serves.

    python3 tests/check_alert_rules.py prometheus/alerts.yml NAMES_FILE... \
        [--dashboard prometheus/grafana-dashboard.json] [--runbook docs/runbook.md] [--no-promtool]

NAMES_FILE: one metric name per line (blank lines and `#` comments ignored), e.g. collected from
a real run with `curl -s 127.0.0.1:9249/metrics 127.0.0.1:9250/metrics | grep -v '^#' |
sed 's/[{ ].*//' | sort -u`; names or sample names (with _bucket/_sum/_count) both work.

Checks:
  - structure: groups[].name, groups[].rules[] with alert, expr, for (a duration), labels.severity
    (critical|warning|info), annotations.summary and annotations.runbook_url whose #anchor is a
    heading of docs/runbook.md (GitHub's anchor rules);
  - every metric name in every expr (identifiers that are not PromQL functions, keywords,
    label names inside {...} or by/without/on/ignoring/group_left/group_right (...), durations,
    numbers or strings) is in the union of the NAMES_FILEs; a histogram's _bucket/_sum/_count
    series is accepted when its base name is listed, except `X_bucket` when the names show X as
    a summary (X_sum/X_count but no X_bucket): histogram_quantile would find nothing;
  - with promtool on PATH (Debian's `prometheus` package ships it; neither PyPI nor npm has
    it), `promtool check rules` too, and `promtool test rules` on prometheus/alerts_test.yml
    when that file exists.

YAML: PyYAML. The project venv ($HEALTHLAKE_CACHE/venv, pyiceberg's) and venv-infra (checkov's)
both have it; without it a minimal reader of this file's subset is not attempted: install PyYAML.

Exit 0 when every check passes, 1 otherwise; prints what it checked.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - explained to the user
    sys.exit("check_alert_rules.py needs PyYAML: use $HEALTHLAKE_CACHE/venv/bin/python (or pip install pyyaml)")

ROOT = Path(__file__).resolve().parents[1]

# Series Prometheus makes itself for every target; they are in no exporter's output.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
             "scrape_samples_post_metric_relabeling", "scrape_series_added", "ALERTS", "ALERTS_FOR_STATE"}

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "days_in_month", "day_of_month", "day_of_week", "day_of_year", "deg",
    "delta", "deriv", "exp", "floor", "histogram_count", "histogram_fraction", "histogram_quantile",
    "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta",
    "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
    "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn",
    "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt",
    "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp",
    "vector", "year", "double_exponential_smoothing",
}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "atan2", "inf", "nan", "start", "end"}
# Keywords followed by a parenthesised list of label names.
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def strip_strings(expr):
    """Removes string literals ("...", '...', `...`) so their contents are never taken as names."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def metric_names(expr):
    """Every metric name an expression reads."""
    text = strip_strings(expr)
    text = re.sub(r"#[^\n]*", "", text)                    # comments
    text = re.sub(r"\{[^}]*\}", "{}", text)                 # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)                # range and subquery durations
    # Label lists after by/without/on/ignoring/group_left/group_right.
    text = re.sub(r"\b(" + "|".join(LABEL_LIST_KEYWORDS) + r")\s*\([^)]*\)", r"\1", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)", text):
        word = match.group(1)
        rest = text[match.end():].lstrip()
        if word.lower() in KEYWORDS or DURATION.match(word):
            continue
        if word in FUNCTIONS or word in AGGREGATIONS:
            if rest.startswith("(") or word in AGGREGATIONS:
                continue
        names.add(word)
    return names


def load_names(paths):
    names = set()
    for path in paths:
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                names.add(line.split()[0].split("{")[0])
    return names


def name_problem(name, names):
    """None when `name` is served, else why not."""
    if name in names or name in SYNTHETIC:
        return None
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if base in names or any(base + s in names for s in HISTOGRAM_SUFFIXES):
                if suffix == "_bucket" and (base + "_count" in names or base + "_sum" in names) \
                        and base + "_bucket" not in names:
                    return f"{base} is served as a summary (no {name}): histogram_quantile finds nothing"
                return None
    return "not in the names files"


def github_anchors(markdown):
    """Anchors GitHub makes for the headings of a markdown file."""
    anchors, seen = set(), {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def check_rules(doc, names, anchors, problems):
    checked = 0
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        problems.append("no `groups` list")
        return 0
    for gi, group in enumerate(groups):
        where_g = f"group {group.get('name', gi)!r}"
        if not group.get("name"):
            problems.append(f"{where_g}: no name")
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            problems.append(f"{where_g}: no rules")
            continue
        for ri, rule in enumerate(rules):
            if "record" in rule:
                continue
            alert = rule.get("alert")
            where = f"{where_g} rule {ri} ({alert})"
            if not alert:
                problems.append(f"{where}: no alert name")
            expr = rule.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{where}: no expr")
                continue
            if "for" not in rule:
                problems.append(f"{where}: no `for` (write `for: 0m` for an immediate alert)")
            elif not DURATION.match(str(rule["for"])):
                problems.append(f"{where}: `for: {rule['for']}` is not a duration")
            severity = (rule.get("labels") or {}).get("severity")
            if severity not in SEVERITIES:
                problems.append(f"{where}: labels.severity {severity!r} not in {sorted(SEVERITIES)}")
            annotations = rule.get("annotations") or {}
            if not annotations.get("summary"):
                problems.append(f"{where}: no annotations.summary")
            url = annotations.get("runbook_url", "")
            m = re.search(r"runbook\.md#([\w-]+)$", url)
            if not m:
                problems.append(f"{where}: runbook_url {url!r} does not point into runbook.md#<anchor>")
            elif m.group(1) not in anchors:
                problems.append(f"{where}: runbook anchor #{m.group(1)} is no heading of docs/runbook.md")
            used = metric_names(expr)
            if not used:
                problems.append(f"{where}: no metric name found in expr")
            bad = {n: name_problem(n, names) for n in sorted(used)}
            for n, why in bad.items():
                if why:
                    problems.append(f"{where}: metric {n}: {why}")
            print(f"  {alert:<22} {severity or '?':<9} for {str(rule.get('for', '-')):<4} "
                  f"metrics: {', '.join(sorted(used))}")
            checked += 1
    return checked


def check_dashboard(path, names, problems):
    board = json.loads(Path(path).read_text())
    checked = 0
    panels = list(board.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))  # rows
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                continue
            used = metric_names(expr)
            for n in sorted(used):
                why = name_problem(n, names)
                if why:
                    problems.append(f"dashboard panel {panel.get('title')!r}: metric {n}: {why}")
            checked += 1
    print(f"  dashboard {path}: {checked} queries")
    return checked


def promtool(rules_path, problems):
    tool = shutil.which("promtool")
    if not tool:
        print("  promtool: not on PATH, skipped (Debian: apt-get install prometheus)")
        return
    for args in (["check", "rules", str(rules_path)],):
        result = subprocess.run([tool, *args], capture_output=True, text=True)
        print("  promtool " + " ".join(args) + ": " + ("ok" if result.returncode == 0 else "FAILED"))
        if result.returncode:
            problems.append("promtool " + " ".join(args) + ":\n" + result.stdout + result.stderr)
    tests = Path(rules_path).with_name("alerts_test.yml")
    if tests.exists():
        result = subprocess.run([tool, "test", "rules", tests.name], capture_output=True, text=True,
                                cwd=tests.parent)
        print(f"  promtool test rules {tests.name}: " + ("ok" if result.returncode == 0 else "FAILED"))
        if result.returncode:
            problems.append(f"promtool test rules {tests}:\n" + result.stdout + result.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rules")
    parser.add_argument("names", nargs="+", help="files of metric names, one per line")
    parser.add_argument("--dashboard", action="append", default=[], help="Grafana dashboard JSON to check too")
    parser.add_argument("--runbook", default=str(ROOT / "docs" / "runbook.md"))
    parser.add_argument("--no-promtool", action="store_true")
    args = parser.parse_args()

    names = load_names(args.names)
    anchors = github_anchors(Path(args.runbook).read_text())
    doc = yaml.safe_load(Path(args.rules).read_text())
    problems = []
    print(f"{args.rules}: {len(names)} metric names from {len(args.names)} file(s), "
          f"{len(anchors)} runbook anchors")
    count = check_rules(doc, names, anchors, problems)
    for board in args.dashboard:
        check_dashboard(board, names, problems)
    if not args.no_promtool:
        promtool(args.rules, problems)
    for p in problems:
        print("FAIL " + p)
    print(f"{count} alert rules checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
