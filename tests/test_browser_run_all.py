"""Run All in a real JupyterLab, driven by headless Chromium: the lesson runs, Run All stops at the first
exercise answer cell, and nothing after it runs (so no solution output can show up under an exercise). The stop is
one clean message (what to do, how to see the solution, how to skip) with no frame of the course package, both in
the saved notebook and in what the page shows.

The kernel runs as a learner's would (``MEDGAN_HEADLESS=0``, ``MEDGAN_WIDGETS=1``), on a temporary copy of
notebook 00 in fast mode. Needs Chromium and its driver from Debian (``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them) and ``selenium`` (the ``dev`` extra); skipped without them.
Selenium is pointed at ``/usr/bin/chromedriver``, so selenium-manager never downloads anything.
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_setup.ipynb"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
STUB = re.compile(r"""^student_exercise\(\s*["'](\d\d\.\d+)["']""", re.M)

# The notebook panel's state, read from JupyterLab's own models (window.jupyterapp, exposed by the server flag).
STATE_JS = """
const app = window.jupyterapp;
const w = app && app.shell && app.shell.currentWidget;
if (!w || !w.sessionContext || !w.content || !w.content.model || !w.context.isReady) { return null; }
const session = w.sessionContext.session;
const kernel = session && session.kernel;
const cells = w.content.model.cells;
const state = [];
for (let i = 0; i < cells.length; i++) {
  const c = cells.get(i);
  state.push(c.type === 'code' ? [c.executionCount, c.outputs.length] : null);
}
return {kernel: kernel ? kernel.status : null, dirty: w.context.model.dirty, cells: state};
"""
SAVE_JS = """
const done = arguments[arguments.length - 1];
window.jupyterapp.commands.execute('docmanager:save').then(() => done('saved'), e => done('error: ' + e));
"""
OUTPUT_TEXT_JS = """
const w = window.jupyterapp.shell.currentWidget;
const cell = w.content.widgets[arguments[0]];
return cell && cell.outputArea ? cell.outputArea.node.innerText : null;
"""
SCROLL_JS = """
const w = window.jupyterapp.shell.currentWidget;
w.content.activeCellIndex = arguments[0];
try { w.content.scrollToItem(arguments[0], 'center'); } catch (e) { w.content.scrollToCell(w.content.activeCell); }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, predicate, timeout: float, interval: float = 0.25, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def _server_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _start_lab(work: Path, results: Path, port: int, token: str, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_", "MEDGAN_HEADLESS"))}
    jupyter_home = work.parent / "jupyter-home"
    env.update(
        MEDGAN_HEADLESS="0", MEDGAN_WIDGETS="1", MEDGAN_FAST="1", MEDGAN_RESULTS_DIR=str(results),
        # a private Jupyter config, data and runtime folder: no user settings, workspaces or kernels leak in
        JUPYTER_CONFIG_DIR=str(jupyter_home / "config"), JUPYTER_DATA_DIR=str(jupyter_home / "data"),
        JUPYTER_RUNTIME_DIR=str(jupyter_home / "runtime"), IPYTHONDIR=str(jupyter_home / "ipython"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),  # the venv's python kernel
    )
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", "--ServerApp.password=", f"--ServerApp.root_dir={work}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
           "jupyterlab.NeverCheckForUpdate", f"--LabApp.workspaces_dir={jupyter_home / 'workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """End the server this test started, and its kernel (same process group)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group this test created
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=5)


def _browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(30)
    return driver


@pytest.mark.timeout(240)
def test_run_all_in_jupyterlab_stops_at_the_first_exercise(tmp_path, monkeypatch):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"Chromium is not installed ({', '.join(missing)} missing): "
                    "apt-get install -y chromium chromium-driver (.ci/run does this)")
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[dev]'")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed: pip install -e '.[dev]'")
    monkeypatch.setenv("SE_OFFLINE", "true")  # belt and braces: selenium-manager must never download

    work, results = tmp_path / "lab", tmp_path / "results"
    work.mkdir()
    nb_path = work / NOTEBOOK.name
    shutil.copy(NOTEBOOK, nb_path)
    cells = json.loads(nb_path.read_text())["cells"]
    stub = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and STUB.search("".join(c["source"])))
    code_before = [i for i, c in enumerate(cells[:stub]) if c["cell_type"] == "code"]

    port, token, log = _free_port(), secrets.token_hex(16), tmp_path / "jupyterlab.log"
    t0 = time.monotonic()
    server = _start_lab(work, results, port, token, log)
    driver = None
    try:
        _wait("JupyterLab to start", lambda: server.poll() is not None or _server_up(
            f"http://127.0.0.1:{port}/api/status?token={token}"), 90, 0.5, log)
        assert server.poll() is None, f"JupyterLab exited:\n{log.read_text(errors='replace')[-3000:]}"
        driver = _browser(tmp_path)
        driver.get(f"http://127.0.0.1:{port}/lab/tree/{nb_path.name}?token={token}&reset")
        state = lambda: driver.execute_script(STATE_JS)  # noqa: E731
        _wait("the notebook and an idle kernel", lambda: (s := state()) and s["kernel"] == "idle", 90, 0.5, log)

        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells'); return true;")
        # Finished: the first answer cell has its output (the NotImplementedError), and the kernel stays idle.
        _wait("Run All to reach the first exercise", lambda: (s := state()) and s["cells"][stub][1] > 0, 120, 0.5, log)
        calm = {"since": None}

        def settled():
            s = state()
            if not s or s["kernel"] != "idle":
                calm["since"] = None
                return False
            calm["since"] = calm["since"] or time.monotonic()
            return time.monotonic() - calm["since"] > 3

        _wait("the kernel to stay idle", settled, 60, 0.25, log)
        assert driver.execute_async_script(SAVE_JS) == "saved"
        _wait("the notebook to be saved", lambda: (s := state()) and not s["dirty"], 30, 0.25, log)
        driver.execute_script(SCROLL_JS, stub)
        time.sleep(1)
        shown = driver.execute_script(OUTPUT_TEXT_JS, stub) or ""
        shot = tmp_path / "run_all_00_setup.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot of the stopped Run All: {shot}")
    finally:
        if driver is not None:
            driver.quit()
        _stop(server)
    print(f"browser Run All test: {time.monotonic() - t0:.1f} s")

    saved = json.loads(nb_path.read_text())["cells"]
    not_run = [i for i in code_before if saved[i].get("execution_count") is None]
    assert not not_run, f"teaching cells {not_run} did not run before the first exercise (cell {stub})"
    errors = [o for o in saved[stub]["outputs"] if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "ExerciseNotDone", saved[stub]["outputs"]
    lines = errors[0]["traceback"]
    assert lines[0].startswith("Exercise 00.1 (force a device with MEDGAN_DEVICE) is waiting for your answer."), lines
    for part in ('show_solution("00.1")', 'skip_exercise("00.1")', "delete its last line"):
        assert any(part in ln for ln in lines), (part, lines)
    frames = [ln for ln in lines if "File " in ln or ".py" in ln or "medgan_utils" in ln or "Traceback" in ln]
    assert not frames, f"the stop shows package frames: {frames}"
    assert "is waiting for your answer" in shown and "skip_exercise" in shown, f"the page shows: {shown!r}"
    assert "exercises.py" not in shown and "Traceback" not in shown and "medgan_utils" not in shown, shown
    ran_after = [i for i, c in enumerate(saved) if i > stub and c["cell_type"] == "code"
                 and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not ran_after, f"cells {ran_after} after the first exercise ran or show outputs"
    assert list(results.rglob("results.json")), "notebook 00 must write results.json before its exercises"
