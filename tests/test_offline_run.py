"""A new learner with an empty data directory and no network (issue: foundation, 'Done when')."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_background(tmp_path, require_real: bool):
    env = dict(os.environ, MEDGAN_DATA_DIR=str(tmp_path / "empty"), MEDGAN_OFFLINE="1")
    env["MEDGAN_REQUIRE_REAL_DATA"] = "1" if require_real else "0"
    out = tmp_path / ("strict" if require_real else "lenient")
    res = subprocess.run([sys.executable, "-m", "medgan_utils.tools.cli", "run", "notebooks/01_background.ipynb", "--fast",
                          "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=env)
    return res, out / "01_background" / "01_background.ipynb"


def test_empty_data_dir_runs_on_phantoms_with_visible_warning(tmp_path):
    res, executed = _run_background(tmp_path, require_real=False)
    assert res.returncode == 0, res.stdout + res.stderr
    text = executed.read_text()
    assert "USING SYNTHETIC PHANTOM DATA instead of pneumoniamnist" in text
    assert "medgan data fetch pneumoniamnist --size 28" in text
    assert "phantom" in res.stdout  # the summary names the dataset actually used


def test_require_real_data_fails_with_the_fix_named(tmp_path):
    res, _ = _run_background(tmp_path, require_real=True)
    assert res.returncode != 0
    assert "FAILED" in res.stdout and "medgan data fetch" in res.stdout and "MEDGAN_REQUIRE_REAL_DATA" in res.stdout
