"""Test-session settings shared by the unit tests and nbval.

* Notebooks run in fast mode (unless MEDGAN_FAST is set explicitly), headless
  (widgets fall back to static figures) and write results.json into a temporary
  folder, never into the repository; feature nets and stored checks go to a fresh
  temporary cache, so a run here behaves like one on a clean CI machine.
* The time each notebook takes under nbval is summed per notebook and checked
  against its fast-mode budget; a notebook over budget fails the session.
* nbval's kernels draw with the course's layout-checking backend
  (medgan_utils.course.figure_check): every figure a notebook shows is checked for
  titles that overlap an image, a plot or another title, and for plots without axis
  labels; any problem fails the session.
"""
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

os.environ.setdefault("MEDGAN_FAST", "1")
os.environ["MEDGAN_HEADLESS"] = "1"
os.environ.setdefault("MEDGAN_RESULTS_DIR", tempfile.mkdtemp(prefix="medgan-test-results-"))
# nbval executes every notebook once, and that execution is kept: each notebook's results.json and (when all its
# cells passed) its executed copy go to MEDGAN_NBVAL_RUN_DIR/<notebook>/, the layout of `medgan run`. The end of the
# session checks every results.json against the evidence standard (course.evidence_keys), and tests/test_site.py
# builds the course website from these copies (`medgan site --from-run`): CI executes each notebook once.
NOTEBOOK_RESULTS = Path(os.environ.get("MEDGAN_NBVAL_RUN_DIR") or tempfile.mkdtemp(prefix="medgan-nbval-run-"))
os.environ["MEDGAN_NBVAL_RUN_DIR"] = str(NOTEBOOK_RESULTS)
_nb_failed: set = set()
# A fresh cache (feature nets, stored precision checks): the tests never depend on what this machine stored.
os.environ.setdefault("MEDGAN_CACHE_DIR", tempfile.mkdtemp(prefix="medgan-test-cache-"))

FIGURE_BACKEND = "module://medgan_utils.course.figure_check"

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


_started: set = set()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before nbval starts a notebook's kernel (at its first cell), point its results.json to its own folder."""
    path = Path(str(item.fspath))
    if path.suffix == ".ipynb":
        os.environ["MEDGAN_RESULTS_DIR"] = str(NOTEBOOK_RESULTS / path.stem)
        if path.stem not in _started:  # a reused MEDGAN_NBVAL_RUN_DIR: an earlier run's layout problems are stale
            _started.add(path.stem)
            (NOTEBOOK_RESULTS / path.stem / "figure_layout.json").unlink(missing_ok=True)
        os.environ["MPLBACKEND"] = FIGURE_BACKEND  # every figure shown: overlapping titles, missing axis labels


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Keep what nbval's kernel printed and drew in the notebook's cell, so that the executed copy can be saved."""
    yield
    outputs, cell = getattr(item, "test_outputs", None), getattr(item, "cell", None)
    if outputs is not None and cell is not None:
        import nbformat

        cell.outputs = [nbformat.from_dict(dict(o)) for o in outputs]


def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last cell: save its executed copy, unless a cell failed (a site needs whole notebooks)."""
    path = Path(str(item.fspath))
    if path.suffix != ".ipynb" or (nextitem is not None and Path(str(nextitem.fspath)) == path):
        return
    book = getattr(item.parent, "nb", None)
    if book is None or path.stem in _nb_failed:
        return
    import nbformat

    from medgan_utils.core.io import atomic_write_text

    for cell in book.cells:
        if cell.cell_type == "code":
            cell.setdefault("outputs", [])
    atomic_write_text(NOTEBOOK_RESULTS / path.stem / path.name, nbformat.writes(book))


def _evidence_failures() -> dict:
    """{notebook: [problems]} for the notebooks nbval ran that must meet the evidence standard."""
    import json

    from medgan_utils.course.evidence_keys import EVIDENCE_NOTEBOOKS, evidence_problems

    out = {}
    for name in EVIDENCE_NOTEBOOKS:
        if name not in _nb_seconds:
            continue
        path = NOTEBOOK_RESULTS / name / "results.json"
        try:
            problems = evidence_problems(name, json.loads(path.read_text()))
        except (OSError, ValueError) as err:
            problems = [f"no readable results.json ({type(err).__name__}: {err})"]
        if problems:
            out[name] = problems
    return out


def _figure_failures() -> dict:
    """{notebook: [layout problems]} recorded by the layout-checking backend in the notebooks nbval ran."""
    import json

    out = {}
    for name in _nb_seconds:
        path = NOTEBOOK_RESULTS / name / "figure_layout.json"
        if path.is_file():
            out[name] = json.loads(path.read_text())
    return out


def pytest_runtest_logreport(report):
    path = str(getattr(report, "fspath", "") or report.nodeid.split("::")[0])
    if path.endswith(".ipynb") and report.when == "call":
        _nb_seconds[Path(path).stem] += report.duration
    if path.endswith(".ipynb") and report.failed:
        _nb_failed.add(Path(path).stem)


def _fast() -> bool:
    return os.environ.get("MEDGAN_FAST", "").lower() in {"1", "true", "yes", "on"}


def _over_budget() -> list:
    return [n for n, secs in _nb_seconds.items()
            if secs > NOTEBOOK_BUDGET_S.get(n, NOTEBOOK_BUDGET_S["default"])] if _fast() else []


def pytest_sessionfinish(session, exitstatus):
    if (_over_budget() or _evidence_failures() or _figure_failures()) and exitstatus == 0:
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
    for name, problems in _figure_failures().items():
        tr.write_line(f"FAILED: {name}'s figures: {'; '.join(problems[:8])}", red=True)
    for name, problems in _evidence_failures().items():
        tr.write_line(f"FAILED: {name}'s results.json misses the evidence standard: {'; '.join(problems)}", red=True)
