"""Combine the suite's coverage data (pytest and every worker/gunicorn process), print the total and
per-package figures, and fail when the total is below the floor in ``.ci/coverage-floor``.

Run by ``make test`` after ``coverage run -m pytest``. The floor only goes up: raise it when the measured
total has grown, never lower it to let a change in.
"""
from __future__ import annotations

import collections
import json
import os
import sys
import tempfile

import coverage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOOR_FILE = os.path.join(ROOT, ".ci", "coverage-floor")
PACKAGES = ("app", "admin", "tasks")


def per_package(files: dict) -> dict[str, list[int]]:
    """``{package: [statements, covered]}`` from a coverage JSON report's ``files``."""
    totals: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for path, report in files.items():
        package = os.path.relpath(os.path.join(ROOT, path), ROOT).split(os.sep)[0]
        totals[package][0] += report["summary"]["num_statements"]
        totals[package][1] += report["summary"]["covered_lines"]
    return totals


def percent(statements: int, covered: int) -> float:
    """Covered share in percent (100 for nothing to cover)."""
    return 100.0 * covered / statements if statements else 100.0


def main() -> int:
    """Combine, report, enforce the floor; the process exit status."""
    cov = coverage.Coverage(config_file=os.path.join(ROOT, "setup.cfg"))
    cov.combine()
    cov.save()
    cov.load()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "coverage.json")
        cov.json_report(outfile=path)
        with open(path) as fh:
            report = json.load(fh)
    totals = per_package(report["files"])
    print("\n== coverage (line), pytest and every worker process")
    for package in PACKAGES + tuple(sorted(set(totals) - set(PACKAGES))):
        statements, covered = totals.get(package, (0, 0))
        print(f"  {package:<8} {percent(statements, covered):5.1f}%  ({covered}/{statements} lines)")
    total = report["totals"]["percent_covered"]
    with open(FLOOR_FILE) as fh:
        floor = float(fh.read().split()[0])
    print(f"  {'total':<8} {total:5.1f}%  (floor {floor:.1f}% in .ci/coverage-floor)")
    if total < floor:
        print(f"coverage {total:.1f}% is below the floor {floor:.1f}%: add tests for what you changed",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
