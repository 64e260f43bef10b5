"""The DCGAN throughput benchmark: a tiny run returns the documented keys with positive numbers."""
import json

import pytest
import torch

from medgan_utils.tools.bench import ClassicDCGANLoop, run_dcgan_bench
from medgan_utils.nets import make_dcgan


pytestmark = pytest.mark.usefixtures("one_thread")


def test_tiny_bench_returns_three_ratios():
    res = run_dcgan_bench(size=28, batch=32, device="cpu", seconds=1.0, windows=2, n_images=256, base=8, warmup=1,
                          precision="fp32")
    for key in ("ours_fp32_img_s", "ours_best_img_s", "ours_fit_img_s", "reference_img_s", "ratios", "ratio",
                "device", "size", "batch", "precision", "tf32"):
        assert key in res
    assert res["ours_fp32_img_s"] > 0 and res["reference_img_s"] > 0 and res["ours_fit_img_s"] > 0
    r = res["ratios"]
    assert r["same_precision"] == pytest.approx(res["ours_fp32_img_s"] / res["reference_img_s"], rel=1e-2)
    assert r["best_precision_vs_fp32"] == pytest.approx(res["ours_best_img_s"] / res["reference_img_s"], rel=1e-2)
    assert r["fit_vs_run_steps"] == pytest.approx(res["ours_fit_img_s"] / res["ours_best_img_s"], rel=1e-2)
    # with --precision fp32 the "best" is the fp32 run itself, timed once
    assert res["precision"] == "fp32" and res["ours_best_img_s"] == res["ours_fp32_img_s"]
    assert res["device"] == "cpu" and res["size"] == 28 and res["batch"] == 32 and res["tf32"] is False
    assert len(res["windows"]["ours_fp32"]) == 2 and len(res["windows"]["reference"]) == 2
    assert res["data_dtype"] == "uint8"
    from medgan_utils.core.precision import cpu_class
    assert res["cpu_class"] == cpu_class() != ""                # the CPU class is reported (see the test below)
    assert 4 * 32 <= res["n_images_fit"] <= 256           # fit() ran on a subset sized to the measured rate
    json.dumps(res)  # the CLI prints it as JSON


def test_cpu_class_follows_the_avx2_setting():
    """ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 makes any x86 machine an AVX2 laptop: class avx2, no bf16,
    and a precision verdict stored under another name than the native class's."""
    import os
    import platform
    import subprocess
    import sys

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the AVX2 setting exists on x86 only")
    code = ("from medgan_utils.core.precision import cpu_class, precision_check_path, resolve_precision; "
            "print(cpu_class(), precision_check_path('cpu').name, resolve_precision('auto', 'cpu'))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    cls, path, precision = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                          check=True).stdout.split()
    assert cls == "avx2" and "avx2" in path and precision == "fp32"


@pytest.mark.skipif(not __import__("medgan_utils.core.precision", fromlist=["x"]).cpu_has_native_bf16(),
                    reason="needs a CPU with native bf16")
def test_bench_times_fp32_and_bf16_separately():
    res = run_dcgan_bench(size=28, batch=32, device="cpu", seconds=1.0, windows=1, n_images=128, base=8, warmup=1,
                          precision="bf16")
    assert res["precision"] == "bf16"
    assert set(res["windows"]) == {"ours_fp32", "ours_best", "reference"}


@pytest.mark.parametrize("kw, match", [({"batch": -1}, "--batch"), ({"batch": 0}, "--batch"),
                                       ({"batch": 10_000}, "--batch"), ({"size": 30}, "--size"),
                                       ({"channels": 2}, "--channels"), ({"seconds": 0}, "--seconds")])
def test_bad_bench_arguments_fail_before_anything_runs(kw, match):
    from medgan_utils.core import SettingError

    with pytest.raises(SettingError, match=match):
        run_dcgan_bench(**{"size": 28, "batch": 32, "device": "cpu", "n_images": 256, **kw})


def test_classic_loop_is_the_tutorial_recipe():
    G, D = make_dcgan(28, 1, latent_dim=8, base=4, seed=0)
    loop = ClassicDCGANLoop(G, D, torch.rand(64, 1, 28, 28) * 2 - 1, batch=16, device="cpu", latent_dim=8,
                            num_workers=0)
    assert isinstance(loop.netD[-1], torch.nn.Sigmoid) and isinstance(loop.criterion, torch.nn.BCELoss)
    loop.run_steps(6)  # crosses an epoch boundary (4 batches per epoch)
    assert len(loop.G_losses) == 6 and len(loop.D_losses) == 6 and len(loop.log) == 2
    loop.close()
