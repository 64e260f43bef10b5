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
    json.dumps(res)  # the CLI prints it as JSON


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
