"""The table printed at the end of a run: case, result, and the first problem of a failure."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = ["NOTE", "Reporter", "Results", "first_problem"]

_RESULTS = {"PASS": "passed", "FAIL": "failed", "ERROR": "errors", "SKIP": "skipped"}


@dataclass
class Row:
    case: str
    result: str
    detail: str = ""


def first_problem(report: Any) -> str:
    """One line saying what went wrong (or why the case was skipped)."""
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    # A ConformanceError lists its problems as "  - ..." lines: show the first one.
    listed = [line.strip()[2:] for line in lines if line.lstrip().startswith("- ")]
    if listed and "does not conform" in lines[0]:
        what = lines[0].split(":", 1)[-1].split(" does not conform")[0].strip()
        return f"{what}: {listed[0]}"
    return lines[0].removeprefix("AssertionError: ")


NOTE = "conformance-note"
"""The `record_property` name under which a passing case notes something for the table."""


def _notes(report: Any) -> str:
    return "; ".join(str(v) for k, v in getattr(report, "user_properties", ()) if k == NOTE)


class Results:
    """Collects one row per conformance case from pytest's reports."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def add(self, report: Any, case: str) -> None:
        row = self.rows.get(report.nodeid)
        if report.when == "setup":
            if report.skipped:
                self.rows[report.nodeid] = Row(case, "SKIP", first_problem(report))
            elif report.failed:
                self.rows[report.nodeid] = Row(case, "ERROR", first_problem(report))
        elif report.when == "call":
            if report.skipped:
                self.rows[report.nodeid] = Row(case, "SKIP", first_problem(report))
            elif report.failed:
                self.rows[report.nodeid] = Row(case, "FAIL", first_problem(report))
            else:
                self.rows[report.nodeid] = Row(case, "PASS", _notes(report))
        elif report.failed and (row is None or row.result == "PASS"):
            self.rows[report.nodeid] = Row(case, "ERROR", first_problem(report))

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(_RESULTS, 0)
        for row in self.rows.values():
            out[row.result] += 1
        return out

    def lines(self, width: int) -> list[str]:
        """The table, each line at most `width` characters."""
        rows = list(self.rows.values())
        name_width = min(max([len("case"), *(len(r.case) for r in rows)]), max(width // 2, 20))
        out = [
            f"{'case':<{name_width}}  result  first problem",
            f"{'-' * name_width}  ------  " + "-" * 13,
        ]
        for row in rows:
            case = row.case if len(row.case) <= name_width else row.case[: name_width - 1] + "…"
            line = f"{case:<{name_width}}  {row.result:<6}  {row.detail}".rstrip()
            out.append(line if len(line) <= width else line[: width - 1] + "…")
        counts = self.counts()
        out.append(
            ", ".join(f"{n} {_RESULTS[label]}" for label, n in counts.items() if n)
            or "no cases ran"
        )
        return out


class Reporter:
    """A pytest plugin: one row per conformance case, printed as a table at the end.

    `cases` holds the node ids of the suite's cases (filled at collection).
    """

    def __init__(self, config: pytest.Config, header: Callable[[], list[str]]):
        self.config = config
        self.header = header
        self.cases: set[str] = set()
        self.results = Results()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid in self.cases:
            case = report.nodeid.rsplit("::", 1)[-1].removeprefix("test_")
            self.results.add(report, case)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Generator[None, None, None]:
        yield  # after pytest's own summary, so the table is the last thing before the totals
        if not self.results.rows:
            return
        terminalreporter.write_sep("=", "conformance report")
        width = max(terminalreporter._tw.fullwidth, 160)
        for line in [*self.header(), *self.results.lines(width)]:
            terminalreporter.write_line(line)
