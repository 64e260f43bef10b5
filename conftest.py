"""Test-session settings shared by the unit tests and nbval.

* Notebooks run in fast mode (unless MEDGAN_FAST is set explicitly), headless
  (widgets fall back to static figures) and write results.json into a temporary
  folder, never into the repository; feature nets and stored checks go to a fresh
  temporary cache, so a run here behaves like one on a clean CI machine.
* The time each notebook takes under nbval is summed per notebook and checked
  against its fast-mode budget; a notebook over budget fails the session.
"""
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

os.environ.setdefault("MEDGAN_FAST", "1")
os.environ["MEDGAN_HEADLESS"] = "1"
os.environ.setdefault("MEDGAN_RESULTS_DIR", tempfile.mkdtemp(prefix="medgan-test-results-"))
# A fresh cache (feature nets, stored precision checks): the tests never depend on what this machine stored.
os.environ.setdefault("MEDGAN_CACHE_DIR", tempfile.mkdtemp(prefix="medgan-test-cache-"))

# Fast-mode budgets in seconds of cell execution on a 2-core CPU (issue requirements).
NOTEBOOK_BUDGET_S = {"default": 90.0, "02_minimax_loss": 60.0}
_nb_seconds = defaultdict(float)


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves os.environ as it found it, whatever it started: a Dask LocalCluster's nannies, for one,
    write MALLOC_TRIM_THRESHOLD_=65536 into this process, and every notebook kernel started after that (nbval's)
    ran about 1.5-2x slower (07: 22 s -> 30 s)."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


def pytest_runtest_logreport(report):
    path = str(getattr(report, "fspath", "") or report.nodeid.split("::")[0])
    if path.endswith(".ipynb") and report.when == "call":
        _nb_seconds[Path(path).stem] += report.duration


def _fast() -> bool:
    return os.environ.get("MEDGAN_FAST", "").lower() in {"1", "true", "yes", "on"}


def _over_budget() -> list:
    return [n for n, secs in _nb_seconds.items()
            if secs > NOTEBOOK_BUDGET_S.get(n, NOTEBOOK_BUDGET_S["default"])] if _fast() else []


def pytest_sessionfinish(session, exitstatus):
    if _over_budget() and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _nb_seconds:
        return
    tr = terminalreporter
    tr.section("notebook cell time (nbval)")
    over = _over_budget()
    for name, secs in sorted(_nb_seconds.items()):
        budget = NOTEBOOK_BUDGET_S.get(name, NOTEBOOK_BUDGET_S["default"])
        flag = "  OVER BUDGET" if name in over else ""
        tr.write_line(f"{name:<28} {secs:7.1f} s   (fast-mode budget {budget:.0f} s){flag}")
    if over:
        tr.write_line(f"FAILED: fast-mode budget exceeded by {', '.join(over)}", red=True)
