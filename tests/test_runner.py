import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from medgan_utils.tools.runner import format_summary, parse_value, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("2e-4") == 2e-4 and parse_value("True") is True
    assert parse_value("none") is None and parse_value("(0.5, 0.999)") == (0.5, 0.999)
    assert parse_value("pneumoniamnist") == "pneumoniamnist"


def _tiny_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("FAST = None\nSEED = 0\nX = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_parameter_override_reaches_the_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as on many servers: the runner must still embed figures
    nb = _tiny_notebook(tmp_path / "99_tiny.ipynb", (
        "from medgan_utils import setup, record_results\n"
        "cfg = setup(FAST=FAST, DEVICE='cpu', SEED=SEED)\n"
        "record_results('99_tiny', {'twice_x': X * 2, 'fast': cfg.fast}, cfg=cfg, params={'X': X})\n"
        "import matplotlib.pyplot as plt\nplt.plot([0, X]); plt.show()"))
    row = run_notebook(nb, tmp_path / "out", parameters={"X": 21, "SEED": 5}, fast=True)
    assert row["status"] == "ok", row
    res = json.loads((tmp_path / "out" / "99_tiny" / "results.json").read_text())
    assert res["metrics"] == {"twice_x": 42, "fast": True} and res["seed"] == 5 and res["params"] == {"X": 21}
    executed = nbformat.read(tmp_path / "out" / "99_tiny" / "99_tiny.ipynb", as_version=4)
    tags = [c.metadata.get("tags", []) for c in executed.cells]
    assert ["injected-parameters"] in tags
    images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "figures must be embedded in the executed notebook (inline backend)"
    assert "99_tiny" in format_summary([row])


def test_failing_notebook_is_reported_not_raised(tmp_path):
    nb = _tiny_notebook(tmp_path / "98_broken.ipynb", "raise ValueError('boom in cell')")
    row = run_notebook(nb, tmp_path / "out")
    assert row["status"] == "FAILED" and "boom in cell" in row["error"]
    assert "FAILED" in format_summary([row])


def test_cli_run_setup_notebook_with_parameter(tmp_path):
    if not (ROOT / "notebooks" / "00_setup.ipynb").exists():
        pytest.fail("notebooks/00_setup.ipynb is missing")
    env = dict(os.environ)
    res = subprocess.run([sys.executable, "-m", "medgan_utils.tools.cli", "run", "00", "--fast", "-p", "SEED", "7",
                          "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "00_setup" in res.stdout and "0 failed" in res.stdout
    rec = json.loads((tmp_path / "00_setup" / "results.json").read_text())
    assert rec["seed"] == 7 and rec["mode"] == "fast"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary[0]["status"] == "ok" and summary[0]["seconds"] > 0
    # terminal hygiene: the learner sees progress and results, not library warnings
    for noise in ("Unable to parse", "running over TCP", "Traceback"):
        assert noise not in res.stdout + res.stderr, noise


def test_notebook_03_parameters_parse_cleanly():
    """papermill reads every parameter of 03, BETAS included (its comment has no '=' that papermill trips over)."""
    from medgan_utils.tools.runner import notebook_parameters

    params = notebook_parameters(ROOT / "notebooks" / "03_dcgan.ipynb")
    assert params["BETAS"]["default"] == (0.5, 0.999) and params["EPOCHS"]["type"] == "int"
    assert params["EMA_DECAY"]["type"] == "float" and params["PRECISION"]["type"] == "str"


def test_a_failed_notebook_is_summarised_by_its_exception_not_its_code():
    from papermill.exceptions import PapermillExecutionError

    from medgan_utils.tools.runner import _short_error

    err = PapermillExecutionError(cell_index=3, exec_count=3, source="x = 1\nraise SettingError('...')",
                                  ename="SettingError", evalue="SCALE 3 does not divide 28. Fix: SCALE = 2.",
                                  traceback=["---> 2 raise SettingError('...')"])
    assert _short_error(err) == "SettingError: SCALE 3 does not divide 28. Fix: SCALE = 2."
    assert _short_error(ValueError("a\n\nb")) == "ValueError: a | b"


def test_the_kernels_own_messages_go_to_its_log_not_the_terminal(tmp_path, capfd):
    """ipykernel's shutdown noise (seen in a parallel sweep) must not reach the learner's terminal."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import os, pathlib\n"
        "from ipykernel.kernelapp import IPKernelApp\n"
        "IPKernelApp.instance().log.error('kernel-own-message-1234')\n"  # the kernel's logger: its own stderr
        "pathlib.Path(os.environ['MEDGAN_RESULTS_DIR'], 'results.json').write_text('{}')\n"
        "print('cell-output-5678')\n")]
    path = tmp_path / "k.ipynb"
    nbformat.write(nb, path)
    row = run_notebook(path, tmp_path / "out")
    assert row["status"] == "ok", row
    terminal = capfd.readouterr()
    assert "kernel-own-message-1234" not in terminal.out + terminal.err
    log = tmp_path / "out" / "k" / "kernel.log"
    assert "kernel-own-message-1234" in log.read_text()
    assert "cell-output-5678" in (tmp_path / "out" / "k" / "k.ipynb").read_text()  # outputs still reach the notebook
    nb.cells[0].source = nb.cells[0].source.replace("IPKernelApp.instance().log.error", "print")
    nbformat.write(nb, path)
    assert run_notebook(path, tmp_path / "out")["status"] == "ok"
    assert not log.exists()  # a kernel that said nothing leaves no empty log behind


def test_a_dead_kernel_fails_the_run_promptly_and_points_to_its_log(tmp_path):
    """A kernel killed mid-cell (as the OOM killer does) is reported, not waited on forever."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import os, sys\nsys.__stderr__.write('last words 4321\\n')\n"
                                          "sys.__stderr__.flush()\nos.kill(os.getpid(), 9)")]
    path = tmp_path / "die.ipynb"
    nbformat.write(nb, path)
    code = ("import json, sys; from pathlib import Path; from medgan_utils.tools.runner import run_notebook; "
            f"print(json.dumps(run_notebook(Path({str(path)!r}), Path({str(tmp_path / 'out')!r}))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["status"] == "FAILED" and row["error"].startswith("DeadKernelError"), row
    assert "kernel.log" in row["error"] and "last words 4321" in (tmp_path / "out" / "die" / "kernel.log").read_text()


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")),
                         ids=lambda p: p.stem[:2])
def test_every_parameter_of_every_notebook_can_be_set_from_the_command_line(path):
    """papermill skips a parameter whose comment holds an "=" (08's DP_EPSILONS, 04's THRESHOLD_RULE and 06's
    DOSE_LEVELS were invisible to ``-p``): every assignment of the parameters cell must be a parameter."""
    import ast
    import json

    from medgan_utils.tools.runner import notebook_parameters

    cells = json.loads(path.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    assigned = [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets]
    assert list(notebook_parameters(path)) == assigned
