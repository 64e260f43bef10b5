"""``medgan bench precision``: does reduced precision train as well as fp32 on this machine?

The course trains in bf16 on a CPU (fp16 on a Mac) only after this check has passed
here: same networks, data, seed and schedule in fp32 and in the reduced precision,
scored by the Fréchet distance in the course's fixed feature space against the
in-distribution validation reference, and timed. The verdict and the numbers are
stored (``MEDGAN_CACHE_DIR/checks/``) per device model and torch version, where the
precision policy (:mod:`medgan_utils.core.precision`) reads them. Rerun it any time;
on CUDA no check is needed (the policy follows the GPU's compute capability).
"""
from __future__ import annotations

import datetime as _dt
import time

import torch

from ..core.device import device_name, get_device
from ..core.errors import SettingError, positive_int
from ..core.io import atomic_write_json
from ..core.precision import CHECKED_PRECISION, cpu_has_native_bf16, mps_fp16_refusal, precision_check_path
from ..data.load import load_dataset
from ..evaluation.features import extract_features, train_feature_net
from ..evaluation.generator_report import evaluate_generator
from ..gan.trainer import DCGANTrainer
from ..nets.dcgan import make_dcgan

#: Pass rule: reduced-precision FD ≤ fp32 FD × QUALITY_SLACK + the validation reference, and ≥ MIN_SPEEDUP.
QUALITY_SLACK = 1.5
MIN_SPEEDUP = 1.1


def _train_and_score(precision, train, val, test, fnet, dev, epochs, seed, f_train, f_test) -> dict:
    G, D = make_dcgan(train.size, train.channels, 100, seed=seed)
    tr = DCGANTrainer(G, D, train, device=dev, precision=precision, seed=seed, progress=False, on_diverge="stop")
    summary = tr.fit(epochs)
    res = evaluate_generator(tr.sample(2000), train, test, fnet, seed=seed, val=val, memorisation=False,
                             train_features=f_train, test_features=f_test)
    return {"precision": tr.precision, "img_per_s": summary["img_per_s"], "diverged": bool(summary["diverged"]),
            "fd": res["fd"], "fd_ref_val": res["fd_ref_val"], "precision_pr": res["precision"],
            "recall": res["recall"], "n": res["n_generated"]}


def run_precision_check(device=None, *, epochs: int = 10, seed: int = 0, dataset: str = "pneumoniamnist",
                        write: bool = True, verbose: bool = True) -> dict:
    """Train fp32 and the reduced precision side by side, compare quality and speed, store the verdict."""
    dev = get_device(device)
    epochs = positive_int(epochs, "--epochs")
    reduced = CHECKED_PRECISION.get(dev.type)
    if reduced is None:
        raise SettingError(f"{dev} needs no precision check: on CUDA the policy follows the compute capability "
                           "(bf16 from 8.0, else fp16). Fix: run it with --device cpu or --device mps.")
    if dev.type == "mps" and (why := mps_fp16_refusal()) is not None:
        raise SettingError(why)  # its autocast would run fp32 and the check would store a false "pass"
    out = {"device": str(dev), "device_name": device_name(dev), "torch": torch.__version__, "precision": reduced,
           "dataset": dataset, "epochs": epochs, "seed": seed,
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "rule": f"pass if FD({reduced}) <= {QUALITY_SLACK} x FD(fp32) + FD(val reference) "
                   f"and speed-up >= {MIN_SPEEDUP}"}
    if dev.type == "cpu" and not cpu_has_native_bf16():
        out.update(verdict="fail", reason="this CPU has no native bf16 (oneDNN AVX-512 BF16 / AMX)")
    else:
        t0 = time.perf_counter()
        train, val, test = (load_dataset(dataset, s, 28) for s in ("train", "val", "test"))
        fnet, finfo = train_feature_net(train, val=val, epochs=5, device=dev, seed=0, verbose=verbose)
        f_train, f_test = extract_features(fnet, train), extract_features(fnet, test)
        runs = {p: _train_and_score(p, train, val, test, fnet, dev, epochs, seed, f_train, f_test)
                for p in ("fp32", reduced)}
        speedup = runs[reduced]["img_per_s"] / runs["fp32"]["img_per_s"]
        ok_quality = runs[reduced]["fd"] <= QUALITY_SLACK * runs["fp32"]["fd"] + runs["fp32"]["fd_ref_val"]
        ok = ok_quality and speedup >= MIN_SPEEDUP and not runs[reduced]["diverged"]
        out.update(verdict="pass" if ok else "fail", speedup=round(speedup, 3), runs=runs,
                   feature_net=finfo.get("hash"), data_used=train.used, seconds=round(time.perf_counter() - t0, 1))
    if write:
        path = precision_check_path(dev)
        atomic_write_json(path, out, role="check result", fix="set MEDGAN_CACHE_DIR to a writable folder")
        out["path"] = str(path)
    return out
