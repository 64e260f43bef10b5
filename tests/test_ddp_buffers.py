"""DDP and batch norm in a GAN step: D is called several times before one backward(), so DDP must not
rewrite the batch-norm buffers in place before each forward pass (tests/ddp_double_forward_worker.py says how
the CPU is made to show what CUDA shows). Two CPU processes over gloo, about 10 s."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_double_forward_worker.py")


@pytest.mark.timeout(180)
def test_double_forward_with_batch_norm_buffers_under_ddp(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r, res in enumerate(ranks):
        assert res["world"] == 2
        # the pattern reproduces: DDP's default breaks the double forward with real nn.BatchNorm2d ...
        assert res["default"].startswith("error") and "inplace operation" in res["default"], (r, res)
        # ... and the package's setting avoids it, in a bare DDP and in the trainer's GAN step
        assert res["chosen"] == "ok", (r, res)
        assert res["trainer"] == "ok", (r, res)
        # the trainer still keeps one copy of the running statistics: rank 0's, broadcast after each step
        assert res["buffer_spread"] == 0.0, (r, res)
