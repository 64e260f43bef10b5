"""Notebook 03's "better generator" attempts, measured: FD ratio against the validation reference, several seeds.

Each attempt trains the course DCGAN on the whole PneumoniaMNIST training split (28 px) with the trainer's
defaults plus one change, draws 2,000 images from the final generator, and scores them with the course's one
fixed feature net (medgan_utils.fixed_feature_net) against real validation images at equal n. Results are
appended to OUT/attempts.jsonl (a finished run is skipped when the script is run again) and summarised as
mean and 95 % t-interval over seeds, with the per-seed values.

    python tools/dcgan_attempts.py --attempts baseline ema ttur sn longer --seeds 0 1 2 --out runs/attempts
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ATTEMPTS = {
    "baseline": {"epochs": 60},
    "ema": {"epochs": 60, "ema_decay": 0.995},
    "ttur": {"epochs": 60, "lr_G": 1e-4, "lr_D": 4e-4},
    "sn": {"epochs": 60, "d_norm": "spectral"},
    "longer": {"epochs": 150},
    "ema_longer": {"epochs": 150, "ema_decay": 0.995},
    "ema_ttur": {"epochs": 60, "ema_decay": 0.995, "lr_G": 1e-4, "lr_D": 4e-4},
}


def run_one(name: str, seed: int, splits: dict, fnet, feats: dict, dataset: str) -> dict:
    from medgan_utils import DCGANTrainer, evaluate_generator, make_dcgan

    cfg = dict(ATTEMPTS[name])
    epochs, d_norm = cfg.pop("epochs"), cfg.pop("d_norm", "batch")
    train = splits["train"]
    G, D = make_dcgan(28, train.channels, 100, seed=seed, d_norm=d_norm)
    tr = DCGANTrainer(G, D, train, seed=seed, progress=False, on_diverge="stop", **cfg)
    summary = tr.fit(epochs)
    res = evaluate_generator(tr.sample(2000), train, splits["test"], fnet, val=splits["val"], seed=seed,
                             train_features=feats["train"], test_features=feats["test"], memorisation=False)
    keep = ("fd", "fd_ci", "fd_ref_val", "fd_ratio_val", "fd_ratio_val_ci", "fd_ref_test", "fd_ratio_test",
            "kid", "kid_ci", "precision", "recall", "precision_ref_val", "recall_ref_val", "n")
    return {"attempt": name, "seed": seed, "dataset": dataset, "settings": ATTEMPTS[name],
            "precision_mode": tr.precision, "train_seconds": summary["train_seconds"],
            "img_per_s": summary["img_per_s"], "diverged": bool(summary["diverged"]),
            **{k: res[k] for k in keep}}


def summarise(rows: list[dict]) -> list[str]:
    from medgan_utils import mean_ci

    lines = ["| attempt | seeds | FD ratio vs val (mean ± 95 % CI) | per seed | precision | recall | train s |",
             "|---|---|---|---|---|---|---|"]
    for name in ATTEMPTS:
        got = [r for r in rows if r["attempt"] == name]
        if not got:
            continue
        ratio, prec, rec = (mean_ci([r[k] for r in got]) for k in ("fd_ratio_val", "precision", "recall"))
        ci = f" ± {ratio['ci95']:.2f}" if ratio["ci95"] is not None else ""
        per = ", ".join(f"{r['fd_ratio_val']:.2f}" for r in sorted(got, key=lambda r: r["seed"]))
        secs = sum(r["train_seconds"] for r in got) / len(got)
        lines.append(f"| {name} | {len(got)} | {ratio['mean']:.2f}{ci} | {per} | {prec['mean']:.3f} | "
                     f"{rec['mean']:.3f} | {secs:.0f} |")
    return lines


def main() -> None:
    from medgan_utils import extract_features, fixed_feature_net, load_splits
    from medgan_utils.core.io import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--attempts", nargs="+", default=list(ATTEMPTS), choices=list(ATTEMPTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--dataset", default="pneumoniamnist")
    p.add_argument("--out", default="runs/attempts")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "attempts.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    splits = load_splits(args.dataset, 28)
    fnet, finfo = fixed_feature_net(splits["train"], val=splits["val"])
    feats = {s: extract_features(fnet, splits[s]) for s in ("train", "test")}
    for name in args.attempts:
        for seed in args.seeds:
            if any(r["attempt"] == name and r["seed"] == seed for r in rows):
                continue
            t0 = time.perf_counter()
            row = {**run_one(name, seed, splits, fnet, feats, args.dataset), "feature_net": finfo["hash"]}
            rows.append(row)
            with open(log, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{name} seed {seed}: FD ratio vs val {row['fd_ratio_val']:.2f}, precision {row['precision']:.3f}, "
                  f"recall {row['recall']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    table = "\n".join(summarise(rows))
    atomic_write_text(out / "summary.md", table + "\n")
    print(table)


if __name__ == "__main__":
    main()
