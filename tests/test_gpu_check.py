"""tools/gpu_check.sh: the one-call GPU check. On a CPU the test suite runs its --dry-run (every check listed with
its command, nothing executed), the refusal without a GPU, the reading of the checks' files, and the fp16 +
d_steps=2 check itself on the CPU's GradScaler."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.sh"
EXPECTED = ["env", "fp16_d_steps_2", "ddp_2_processes", "bench_64_compiled", "bench_28_eager", "bench_64_eager",
            "feature_net_cpu_vs_gpu", "notebooks_03_08_fast"]

pytestmark = pytest.mark.timeout(120)


def _script(*args, env=None):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=100,
                          env={**os.environ, "PYTHON": sys.executable, **(env or {})})


def test_dry_run_lists_every_check_and_runs_none(tmp_path):
    out = tmp_path / "gc"
    proc = _script("--dry-run", str(out))
    assert proc.returncode == 0, proc.stderr
    for i, name in enumerate(EXPECTED, 1):
        assert f"{i}. {name}:" in proc.stdout
    checks = json.loads((out / "gpu_check_plan.json").read_text())
    assert [c["name"] for c in checks] == EXPECTED
    cmd = {c["name"]: " ".join(c["cmd"]) for c in checks}
    assert "recompiles" in checks[3]["env"]["TORCH_LOGS"] and "--compile on" in cmd["bench_64_compiled"]
    assert "--nproc_per_node 2" in cmd["ddp_2_processes"] and "--device cuda" in cmd["ddp_2_processes"]
    assert "run 03 04 05 06 07 08 --fast" in cmd["notebooks_03_08_fast"]
    assert all("--device cuda" in cmd[n] for n in ("bench_28_eager", "bench_64_eager", "bench_64_compiled"))
    assert sum(c["timeout"] for c in checks) > 600  # the budget, not the sum, bounds it
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check_plan.json"]  # nothing ran


def test_without_a_gpu_it_refuses_in_one_line(tmp_path):
    proc = _script(str(tmp_path / "gc"), env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no CUDA GPU" in proc.stderr and "--dry-run" in proc.stderr


def test_numbers_are_read_from_the_checks_files(tmp_path):
    from medgan_utils.tools import gpu_check

    (tmp_path / "bench_64_compiled.json").write_text(json.dumps({"precision": "bf16", "ours_best_img_s": 9000.0,
                                                                 "reference_img_s": 3000.0, "first_step_s": 40.0,
                                                                 "ratios": {"same_precision": 1.5}}))
    (tmp_path / "compile_logs.txt").write_text("Recompiling function forward\nRecompiling function forward\n")
    (tmp_path / "ddp").mkdir()
    (tmp_path / "ddp" / "results.json").write_text(json.dumps({"metrics": {"world_size": 2, "backend": "gloo"}}))
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "summary.json").write_text(json.dumps([{"notebook": "03_dcgan", "status": "ok",
                                                                      "seconds": 20.0}]))
    (tmp_path / "bench_28_eager.json").write_text("{broken")
    res = gpu_check.numbers(tmp_path)
    assert res["bench_64_compiled"]["ours_best_img_s"] == 9000.0 and res["recompiles"] == 2
    assert res["bench_28_eager"] is None and res["bench_64_eager"] is None
    assert res["ddp_2_processes"] == {"world_size": 2, "backend": "gloo"}
    assert res["notebooks"] == {"03_dcgan": {"status": "ok", "seconds": 20.0}}


def test_the_fp16_d_steps_check_itself_on_the_cpu(tmp_path, one_thread):
    from medgan_utils.tools import gpu_check

    res = gpu_check.check_fp16_d_steps(tmp_path / "fp16.json", 1, device="cpu", n_images=64, base=8, batch_size=32)
    assert res["ok"] and res["scaler_enabled"] and res["precision"] == "fp16" and res["steps"] == 2
    assert json.loads((tmp_path / "fp16.json").read_text())["ok"] is True
