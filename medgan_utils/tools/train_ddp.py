"""The DCGAN of notebook 03 on several processes: ``torchrun --nproc_per_node N -m medgan_utils.tools.train_ddp``.

One process per GPU (NCCL) or per CPU process group member (gloo). ``--batch`` is the global batch. Rank 0 writes
the checkpoints (``OUT/checkpoints``), ``results.json`` and ``final.pt`` (G and D weights); ``--resume`` continues
from the latest checkpoint on every rank. Multi-node: the same command on each node with ``--nnodes``,
``--node_rank`` (or ``--rdzv_backend c10d --rdzv_endpoint HOST:PORT --rdzv_id JOB``), see README.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun ... -m medgan_utils.tools.train_ddp",
                                description="DCGAN training with DistributedDataParallel.")
    p.add_argument("--dataset", default="pneumoniamnist", help="MedMNIST flag or a path (as notebook 03's DATASET)")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128, help="global batch, split evenly across the processes")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--sync-bn", action="store_true", help="batch norm over the global batch (SyncBatchNorm)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is a GPU)")
    p.add_argument("--share-gpu", action="store_true",
                   help="allow more processes than GPUs (round-robin, gloo): checks the DDP path on one GPU")
    p.add_argument("--out", default="runs/ddp", help="checkpoints, results.json and final.pt (rank 0 writes)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in OUT/checkpoints")
    p.add_argument("--deterministic", action="store_true", help="no autotuned kernels or TF32 (bit-comparable runs)")
    return p


def train(args) -> dict:
    from ..core.io import atomic_write_json, save_checkpoint
    from ..data.load import load_dataset
    from ..gan.distributed import DistributedDCGANTrainer, close_distributed, init_distributed
    from ..nets.dcgan import make_dcgan

    rank, world, device = init_distributed(args.device, share_gpus=args.share_gpu)
    try:
        data = load_dataset(args.dataset, "train", size=args.image_size)
        G, D = make_dcgan(args.image_size, channels=int(data.images.shape[1]), seed=args.seed)
        out = Path(args.out)
        tr = DistributedDCGANTrainer(G, D, data, device=device, sync_bn=args.sync_bn, batch_size=args.batch,
                                     lr=args.lr, seed=args.seed, precision=args.precision,
                                     deterministic=args.deterministic, checkpoint_dir=out / "checkpoints",
                                     resume=args.resume, name="dcgan_ddp")
        start = time.perf_counter()
        summary = tr.fit(args.epochs)
        summary.update(wall_seconds=round(time.perf_counter() - start, 2), resumed_from=tr.resumed_from,
                       dataset=args.dataset, image_size=args.image_size, backend=torch.distributed.get_backend())
        if rank == 0:
            save_checkpoint(out / "final.pt", {"G": tr.G_raw.state_dict(), "D": tr.D_raw.state_dict(),
                                               "global_step": tr.global_step})
            atomic_write_json(out / "results.json", {"notebook": "train_ddp", "mode": "ddp", "seed": args.seed,
                                                     "params": vars(args), "metrics": summary},
                              role="results file", fix="pass a writable --out folder")
            print(f"rank 0: {summary['global_step']} steps of global batch {args.batch} on {world} process(es) "
                  f"({summary['backend']}), {summary['img_per_s']} img/s; wrote {out / 'results.json'}")
        return summary
    finally:
        close_distributed()


def main(argv=None) -> int:
    from ..core.errors import CourseError

    args = build_parser().parse_args(argv)
    try:
        train(args)
    except CourseError as err:
        print(f"train_ddp: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
