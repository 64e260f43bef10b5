"""Hostile and clumsy input, part 2 (issue 24): output folders and what is found in them. results.json and
run.json are untrusted (too large, malformed, nested, hostile HTML and Markdown); grid files are untrusted (alias
bombs, huge grids); `medgan site` never deletes what it did not create and holds the output lock; a kill -9 leaves
neither a 0-byte notebook nor a lock that blocks the rerun; two sweeps into one --out do not overwrite each other.

No kernel starts: papermill's execute_notebook is replaced by a fake that writes what a notebook would.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import medgan_utils.tools.site as site_mod
import medgan_utils.tools.sweep as sweep_mod
from medgan_utils.core.errors import SettingError
from medgan_utils.core.io import FolderInUse, folder_lock
from medgan_utils.tools.cli import main
from medgan_utils.tools.report import write_report
from medgan_utils.tools.runner import run_notebook

pytestmark = pytest.mark.timeout(60)


def warnings_and_no_traceback(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.strip()]


def _write(folder: Path, text: str, run_json: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(text)
    if run_json is not None:
        (folder / "run.json").write_text(run_json)
    return folder


GOOD = json.dumps({"notebook": "03_dcgan", "mode": "fast", "seed": 0, "params": {"EPOCHS": 2},
                   "metrics": {"fd": 12.5, "kid": 1.0}})


# --------------------------------------------------------------------------- report: malformed files (3, 8)
@pytest.mark.parametrize("name, text", [
    ("a_list", "[1, 2, 3]"),
    ("a_string", '"results"'),
    ("metrics_list", json.dumps({"notebook": "03_dcgan", "metrics": [1, 2]})),
    ("params_string", json.dumps({"notebook": "03_dcgan", "params": "EPOCHS=2", "metrics": {}})),
    ("nested", "[" * 100_000 + "]" * 100_000),
    ("deep_object", '{"metrics": ' + '{"a": ' * 80 + "1" + "}" * 80 + "}"),
    ("not_json", "{not json"),
    ("runs_dict", json.dumps({"notebook": "04_augmentation", "metrics": {"runs": {"auc": 1}}})),
])
def test_malformed_results_are_skipped_with_one_line_naming_them(tmp_path, capsys, name, text):
    _write(tmp_path / "good", GOOD)
    _write(tmp_path / name, text)
    assert main(["report", str(tmp_path)]) == 0
    lines = warnings_and_no_traceback(capsys)
    assert len(lines) == 1 and lines[0].startswith("medgan: warning: skipped") and name in lines[0], lines
    assert "| good | 03_dcgan | fast | 0 |" in (tmp_path / "report.md").read_text()


def test_huge_numbers_corrupt_run_json_and_a_string_ratio_do_not_crash(tmp_path, capsys):
    _write(tmp_path / "big", '{"notebook": "03_dcgan", "mode": "fast", "seed": 1, "metrics": {"fd": 1' + "0" * 400
           + ', "kid": 1e400}}', run_json="{corrupt")
    rows = [{"arm": "gan", "fraction": 0.1, "ratio": r, "seed": s, "auc": 0.7} for r in ("abc", 1.0) for s in (0, 1)]
    _write(tmp_path / "ratio", json.dumps({"notebook": "04_augmentation", "mode": "fast", "seed": 0,
                                           "metrics": {"runs": rows}}))
    assert main(["report", str(tmp_path)]) == 0
    lines = warnings_and_no_traceback(capsys)
    assert len(lines) == 1 and "run.json" in lines[0] and "big" in lines[0], lines
    md = (tmp_path / "report.md").read_text()
    assert "| big | 03_dcgan | fast | 1 |" in md  # the value that is not a finite number is left blank
    assert "gan (ratio abc)" in md and "gan (ratio 1)" in md


def test_results_file_over_the_size_cap_is_skipped_unread(tmp_path, capsys):
    _write(tmp_path / "good", GOOD)
    big = tmp_path / "huge"
    big.mkdir()
    with open(big / "results.json", "wb") as fh:
        fh.truncate(100 * 2 ** 20)  # a sparse 100 MB file: refused by its size, never read
    t0 = time.perf_counter()
    assert main(["report", str(tmp_path)]) == 0
    assert time.perf_counter() - t0 < 20
    (line,) = warnings_and_no_traceback(capsys)
    assert "huge" in line and "100 MB" in line and "20 MB" in line


def test_only_malformed_results_is_one_error_line(tmp_path, capsys):
    _write(tmp_path / "bad", "[]")
    assert main(["report", str(tmp_path)]) == 2
    lines = warnings_and_no_traceback(capsys)
    assert lines[-1].startswith("medgan: error:") and "None of the 1" in lines[-1]


# --------------------------------------------------------------------------- report: injection (4)
def _table_rows(html: str) -> list[int]:
    return [len(re.findall(r"<td", row)) for row in re.findall(r"<tr>(.*?)</tr>", html, re.S) if "<td" in row]


def test_html_and_markdown_in_results_are_escaped(tmp_path):
    from markdown_it import MarkdownIt

    evil = '<script>alert(1)</script> | ![x](http://evil.example/x.png) [y](http://evil.example) `code` $x$'
    _write(tmp_path / "r0", json.dumps({"notebook": evil, "mode": "fast|x", "seed": "<b>0</b>",
                                        "params": {"LABEL": evil, "SEED": 0},
                                        "metrics": {"fd": 1.0, "runs": [
                                            {"arm": evil, "fraction": 0.5, "seed": 0, "auc": 0.7},
                                            {"arm": evil, "fraction": 0.5, "seed": 1, "auc": 0.8}],
                                            "primary": {"contrast": evil, "estimate": 0.1, "ci": [0, 0.2],
                                                        "method": evil}}}))
    rows = [{"arm": "real", "fraction": 0.5, "seed": s, "auc": 0.6} for s in (0, 1)]
    _write(tmp_path / "r1", json.dumps({"notebook": "04_augmentation", "mode": "fast", "metrics": {"runs": rows}}))
    written = write_report(tmp_path)  # two notebooks with rows: one plot each, named after the notebook
    assert all(p.parent == tmp_path for p in written) and len(list(tmp_path.rglob("*.png"))) == 2
    md = (tmp_path / "report.md").read_text()
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<script" not in html and "<img" not in html and "evil.example\"" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html
    cells = _table_rows(html)
    assert cells[:2] == [6, 6]  # the runs table: run, notebook, mode, seed, setting, fd; a '|' split nothing
    assert cells[2:] and all(n == 5 for n in cells[2:]), cells  # the pooled tables


# --------------------------------------------------------------------------- grids (5, 6)
@pytest.fixture
def tiny_notebook(tmp_path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("SEED = 0\nSCALE = 1.0\nLABEL = 'a'\nFAST = None  # type: bool\n",
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(SEED)")]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


BOMB = """a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
grid:
  LABEL: *g
"""


@pytest.mark.timeout(30)
def test_yaml_alias_bomb_is_refused_at_once(tmp_path, tiny_notebook, capsys):
    grid = tmp_path / "bomb.yaml"
    grid.write_text(BOMB)
    t0 = time.perf_counter()
    assert main(["sweep", str(tiny_notebook), "--grid", str(grid), "--list"]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and len(err) < 400
    assert "alias" in err and "*a" in err and "Fix" in err


@pytest.mark.timeout(30)
def test_a_million_run_grid_is_refused_at_once(tmp_path, tiny_notebook, capsys):
    grid = tmp_path / "huge.yaml"
    grid.write_text(f"grid:\n  SEED: {list(range(1000))}\n  SCALE: {[float(i) for i in range(1000)]}\n")
    t0 = time.perf_counter()
    assert main(["sweep", str(tiny_notebook), "--grid", str(grid), "--list"]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert "1,000,000 runs" in err and "10,000" in err and "Fix" in err and err.count("\n") == 1


def test_list_streams_each_run_as_it_is_checked(tmp_path, tiny_notebook, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text("runs:\n  - {SEED: 0}\n  - {SEED: 1}\n  - {SEED: 2}\n  - {SEED: -1}\n")
    assert main(["sweep", str(tiny_notebook), "--grid", str(grid), "--list"]) == 2
    captured = capsys.readouterr()
    assert [line.split("\t")[0] for line in captured.out.splitlines()] == ["0", "1", "2"]  # printed before run 3
    assert "Run 3" in captured.err and "SEED" in captured.err


# --------------------------------------------------------------------------- sweeps and kill -9 (17; untried 3, 4)
def fake_papermill(monkeypatch, calls: list | None = None):
    """papermill.execute_notebook that writes an executed notebook and the notebook's results.json."""
    import papermill

    def execute(input_path, output_path, parameters=None, **kw):
        if calls is not None:
            calls.append(parameters)
        nb = nbformat.read(input_path, as_version=4)
        Path(output_path).write_text(nbformat.writes(nb))
        out = Path(os.environ["MEDGAN_RESULTS_DIR"])
        (out / "results.json").write_text(json.dumps({"notebook": "tiny", "mode": "fast", "params": parameters,
                                                      "metrics": {"value": 1}}))

    monkeypatch.setattr(papermill, "execute_notebook", execute)


def in_process(tasks, workers, n_gpus=None):
    return [sweep_mod.run_one({**t, "env": {}}) for t in tasks]


def test_two_sweeps_into_one_out_the_second_is_refused(tmp_path, tiny_notebook, monkeypatch, capsys):
    fake_papermill(monkeypatch)
    monkeypatch.setattr(sweep_mod, "run_local", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    grid, out = tmp_path / "g.yaml", tmp_path / "out"
    grid.write_text("grid:\n  SEED: [0, 1]\n")
    out.mkdir()
    (out / ".medgan.lock").write_text(f"{os.getppid()}\n")  # the first sweep, alive
    assert main(["sweep", str(tiny_notebook), "--grid", str(grid), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "in use by another run" in err and str(os.getppid()) in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == [".medgan.lock"]  # not even sweep.json was touched


def test_a_run_folder_held_by_another_sweep_is_left_untouched(tmp_path, tiny_notebook, monkeypatch):
    fake_papermill(monkeypatch)
    folder = tmp_path / "out" / "run0"
    folder.mkdir(parents=True)
    (folder / ".medgan.lock").write_text(f"{os.getppid()}\n")
    (folder / "run.json").write_text('{"status": "ok"}')
    rec = sweep_mod.run_one({"index": 0, "id": "run0", "notebook": str(tiny_notebook), "out": str(tmp_path / "out"),
                             "params": {"SEED": 0}})
    assert rec["status"] == "busy" and "in use" in rec["error"]
    assert (folder / "run.json").read_text() == '{"status": "ok"}'  # the other sweep's record is not replaced
    assert sweep_mod.run_status(folder) == "running"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_rerun_after_a_kill_9_mid_sweep(tmp_path, tiny_notebook, monkeypatch):
    """What a kill -9 of `medgan sweep` leaves: its OUT lock (dead pid), a finished run, an interrupted run (stale
    lock, a half-written notebook), and a run a still-living pool worker is finishing. The rerun redoes exactly
    the interrupted run and leaves the other two alone."""
    calls: list = []
    fake_papermill(monkeypatch, calls)
    monkeypatch.setattr(sweep_mod, "run_local", in_process)
    grid, out = tmp_path / "g.yaml", tmp_path / "out"
    grid.write_text("grid:\n  SEED: [0, 1, 2]\n")
    specs = sweep_mod.plan_sweep(tiny_notebook, grid)
    done, cut, busy = (out / s["id"] for s in specs)
    dead = _dead_pid()
    for folder in (done, cut, busy):
        folder.mkdir(parents=True)
    (out / ".medgan.lock").write_text(f"{dead}\n")
    (done / "results.json").write_text("{}")
    (done / "run.json").write_text(json.dumps({**specs[0], "status": "ok"}))
    (cut / ".medgan.lock").write_text(f"{dead}\n")
    (cut / f".tiny.ipynb.{dead}.abcd.part").write_text('{"cells": [')
    (busy / ".medgan.lock").write_text(f"{os.getppid()}\n")  # an orphaned worker, still running
    records = sweep_mod.sweep(tiny_notebook, grid, out, echo=lambda *a, **k: None)
    assert [r["status"] for r in records] == ["ok", "ok", "running"]
    assert [c["SEED"] for c in calls] == [1]  # only the interrupted run was redone
    assert sorted(p.name for p in cut.iterdir()) == ["results.json", "run.json", "tiny.ipynb"]  # no lock, no .part
    assert not (busy / "run.json").exists() and (busy / ".medgan.lock").exists()
    assert not (out / ".medgan.lock").exists()


def test_kill_9_leaves_no_0_byte_notebook_and_the_next_run_takes_over(tmp_path, tiny_notebook, monkeypatch):
    script = (
        "import sys, time, papermill\n"
        "def fake(inp, out, **kw):\n"
        "    open(out, 'w').close()\n"  # papermill's first write of the output, cut short by the kill
        "    print('started', flush=True)\n"
        "    time.sleep(120)\n"
        "papermill.execute_notebook = fake\n"
        "from medgan_utils.tools.runner import run_notebook\n"
        "run_notebook(sys.argv[1], sys.argv[2])\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", script, str(tiny_notebook), str(out)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    folder = out / "tiny"
    assert not (folder / "tiny.ipynb").exists()  # never a 0-byte executed notebook under the real name
    assert (folder / ".medgan.lock").read_text().split()[0] == str(proc.pid)  # the dead run's lock is still there
    fake_papermill(monkeypatch)
    row = run_notebook(tiny_notebook, out)
    assert row["status"] == "ok", row
    assert sorted(p.name for p in folder.iterdir()) == ["results.json", "tiny.ipynb"]  # stale lock and .part gone
    nbformat.read(folder / "tiny.ipynb", as_version=4)


def test_lock_records_host_and_start_time_and_spots_a_reused_pid(tmp_path):
    with folder_lock(tmp_path) as lock:
        pid, host, start = lock.read_text().split()
        assert int(pid) == os.getpid() and host == os.uname().nodename
    (tmp_path / ".medgan.lock").write_text(f"{os.getppid()} {os.uname().nodename} 1\n")  # a live pid, reused
    with folder_lock(tmp_path):
        pass
    (tmp_path / ".medgan.lock").write_text(f"{_dead_pid()} some-other-host 5\n")  # another host: cannot check
    with pytest.raises(FolderInUse) as exc:
        with folder_lock(tmp_path):
            pass
    assert "some-other-host" in str(exc.value) and "delete" in str(exc.value)


# --------------------------------------------------------------------------- site (1)
def _run_dir(tmp_path) -> Path:
    run = tmp_path / "run"
    folder = run / "00_setup"
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Setup")]
    nbformat.write(nb, folder / "00_setup.ipynb")
    (folder / "results.json").write_text("[1, 2]")  # malformed: a warning, not a traceback
    (folder / "run.json").write_text("{corrupt")
    return run


def test_site_never_deletes_a_source_folder_it_did_not_make(tmp_path, monkeypatch):
    monkeypatch.setattr(site_mod, "sphinx_build", lambda *a: (_ for _ in ()).throw(AssertionError("built")))
    out = tmp_path / "site"
    mine = out / "source" / "chapter.md"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own book")
    with pytest.raises(site_mod.SiteBuildError, match="not made by `medgan site`"):
        site_mod.build_site(out, notebooks=["00"], from_run=_run_dir(tmp_path))
    assert mine.read_text() == "my own book"
    assert main(["site", "--out", str(out), "--from-run", str(_run_dir(tmp_path / "b")), "00"]) == 2


def test_site_checks_everything_before_replacing_its_own_source(tmp_path, monkeypatch):
    staged = []
    monkeypatch.setattr(site_mod, "sphinx_build", lambda src, html, log: staged.append(sorted(
        p.name for p in (src / "notebooks").iterdir())))
    out, run = tmp_path / "site", _run_dir(tmp_path)
    site_mod.build_site(out, notebooks=["00"], from_run=run)  # malformed results: skipped, the site still builds
    assert staged == [["00_setup.ipynb"]] and (out / "source" / site_mod.SITE_MARKER).is_file()
    keep = out / "source" / "index.md"
    with pytest.raises(site_mod.SiteBuildError, match="No executed copy of 01_background"):
        site_mod.build_site(out, notebooks=["00", "01"], from_run=run)
    assert keep.is_file()  # the failed build deleted nothing
    (run / "00_setup" / "00_setup.ipynb").write_text("")  # a 0-byte notebook (an old kill -9)
    with pytest.raises(site_mod.SiteBuildError, match="not a readable executed notebook"):
        site_mod.build_site(out, notebooks=["00"], from_run=run)


def test_site_takes_the_output_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(site_mod, "sphinx_build", lambda *a: None)
    out = tmp_path / "site"
    out.mkdir()
    (out / ".medgan.lock").write_text(f"{os.getppid()}\n")
    with pytest.raises(FolderInUse, match="site folder"):
        site_mod.build_site(out, notebooks=["00"], from_run=_run_dir(tmp_path))
    assert not (out / "source").exists()


def test_grid_errors_never_print_a_huge_value(tmp_path, tiny_notebook, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  SEED: " + "x" * 5000 + "\n")
    assert main(["sweep", str(tiny_notebook), "--grid", str(grid), "--list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 600 and "must be a list" in err
    with pytest.raises(SettingError):
        sweep_mod.read_grid(grid)
