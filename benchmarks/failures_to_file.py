"""pytest plugin for time-boxed runs (benchmarks/gpu_check.sh): each failure's traceback is
appended to $FAILURES_FILE the moment it happens, so a run killed at its time limit still
says what failed and why. Load with ``-p failures_to_file`` (benchmarks/ on PYTHONPATH)."""

import os


def pytest_runtest_logreport(report):
    if report.failed:
        with open(os.environ.get("FAILURES_FILE", "failures.txt"), "a") as out:
            out.write(f"\n!!! {report.nodeid} ({report.when})\n{report.longreprtext[-4000:]}\n")
