"""A check's result as JUnit XML, the test report format CI systems read (GitHub, GitLab, Jenkins, Azure).

The layout follows the Apache Ant JUnit format (tests/cli/data/junit-ant.xsd checks it), the strictest
of the variants CI systems accept: `testsuites` > one `testsuite` (with `properties`, the test cases,
`system-out`, `system-err`) and one `testcase` per budget and per baseline comparison, each passed,
`failure` (over budget, regressed) or `skipped` (no budget set, nothing to measure or predict it with).
Test names stay the same from run to run (CI systems track them); the figures go to `system-out`. The
figures are computed together, so each test case's time is the check's wall time split evenly.
"""

from __future__ import annotations

import datetime
import socket
import xml.etree.ElementTree as ET

from edgekit.budgets import BUDGET_LABELS, format_budget


def _case(suite: ET.Element, classname: str, name: str, seconds: float, failure: str | None = None,
          skipped: str | None = None) -> None:
    case = ET.SubElement(suite, "testcase", name=name, classname=classname, time=f"{seconds:.3f}")
    if failure is not None:
        ET.SubElement(case, "failure", message=failure, type="edgekit.DoesNotFit").text = failure
    elif skipped is not None:
        ET.SubElement(case, "skipped", message=skipped)


def to_junit(result, timestamp: datetime.datetime | None = None) -> str:
    """JUnit XML text for a `CheckResult` (edgekit.workflows.check)."""
    when = (timestamp or datetime.datetime.now()).strftime("%Y-%m-%dT%H:%M:%S")
    classname = f"edgekit.check.{result.device}"
    suite = ET.Element("testsuite", name=f"edgekit check {result.device}", package="edgekit", id="0",
                       timestamp=when, hostname=socket.gethostname() or "localhost")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("model", result.model_path), ("device", result.device), ("runtime", result.runtime),
                        ("precision", result.precision), ("baseline", result.baseline_path or "")):
        ET.SubElement(properties, "property", name=name, value=str(value))
    failures = set(result.failures())
    summary: list[str] = []  # test names stay stable across runs; the figures go to system-out
    per_case = result.seconds / max(1, len(result.budgets) + 1 + len(result.regressions))
    for b in result.budgets:
        label = BUDGET_LABELS[b.budget]
        value = b.measured if b.measured is not None else b.predicted
        kind = "measured" if b.measured is not None else "predicted"
        if b.limit is None:
            _case(suite, classname, f"{label} budget", per_case, skipped=f"no {label} budget set")
        elif value is None:
            _case(suite, classname, f"{label} budget", per_case, skipped=f"{label} not measurable here")
        else:
            failed = next((f for f in failures if f.startswith(f"{label}: ")), None)
            _case(suite, classname, f"{label} budget", per_case, failure=failed)
            summary.append(f"{label}: {kind} {format_budget(b.budget, value)}, limit "
                           f"{format_budget(b.budget, b.limit)}")
    ops_failure = next((f for f in failures if f.startswith("ops: ")), None)
    _case(suite, classname, f"op support ({result.runtime})", per_case, failure=ops_failure)
    for r in result.regressions:
        _case(suite, classname, f"{BUDGET_LABELS[r.budget]} vs baseline", per_case,
              failure=f"regression: {r.describe()}" if r.regressed else None)
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", "0")
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    suite.set("time", f"{result.seconds:.3f}")
    ET.SubElement(suite, "system-out").text = "\n".join([*summary, *result.notes])
    ET.SubElement(suite, "system-err").text = ""
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


__all__ = ["to_junit"]
