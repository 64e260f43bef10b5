"""The DCGAN throughput benchmark: a tiny run returns the documented keys with positive numbers."""
import json

import pytest
import torch

from medgan_utils.bench import ClassicDCGANLoop, run_dcgan_bench
from medgan_utils.models import make_dcgan


pytestmark = pytest.mark.usefixtures("one_thread")


def test_tiny_bench_returns_keys():
    res = run_dcgan_bench(size=28, batch=32, device="cpu", seconds=1.0, windows=2, n_images=256, base=8, warmup=1)
    for key in ("ours_img_s", "reference_img_s", "ratio", "device", "size", "batch"):
        assert key in res
    assert res["ours_img_s"] > 0 and res["reference_img_s"] > 0 and res["ratio"] > 0
    assert res["ratio"] == pytest.approx(res["ours_img_s"] / res["reference_img_s"], rel=1e-2)
    assert res["device"] == "cpu" and res["size"] == 28 and res["batch"] == 32
    assert len(res["windows"]["ours"]) == 2 and len(res["windows"]["reference"]) == 2
    json.dumps(res)  # the CLI prints it as JSON


def test_classic_loop_is_the_tutorial_recipe():
    G, D = make_dcgan(28, 1, latent_dim=8, base=4, seed=0)
    loop = ClassicDCGANLoop(G, D, torch.rand(64, 1, 28, 28) * 2 - 1, batch=16, device="cpu", latent_dim=8,
                            num_workers=0)
    assert isinstance(loop.netD[-1], torch.nn.Sigmoid) and isinstance(loop.criterion, torch.nn.BCELoss)
    loop.run_steps(6)  # crosses an epoch boundary (4 batches per epoch)
    assert len(loop.G_losses) == 6 and len(loop.D_losses) == 6 and len(loop.log) == 2
    loop.close()
