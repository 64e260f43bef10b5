#!/usr/bin/env bash
# The one-call GPU check: run it whenever a GPU is available, then copy its numbers, with the card's name and the
# date, into BENCHMARKS.md. About 8 minutes on one GPU. Usage: bash tools/gpu_check.sh [OUT_DIR]
#   1. medgan env (device, compute capability, precision policy)
#   2. medgan bench dcgan at 28 and 64 px, eager; and at 64 px compiled (CUDA graphs)
#   3. notebook 03 in full mode at 64 px, with a 3-minute training budget
# Everything lands as JSON in OUT_DIR (default runs/gpu_check). Set MEDGAN_DATA_DIR to a folder holding
# pneumoniamnist_64.npz when the machine has no network (`medgan data fetch pneumoniamnist --size 64`).
set -uo pipefail
OUT="${1:-runs/gpu_check}"
mkdir -p "$OUT"
status=0
run() {  # run NAME CMD...: keep going after a failure, remember it
  local name="$1"; shift
  echo "== $name: $*"
  if ! "$@"; then echo "!! $name failed"; status=1; fi
}
run env medgan env
medgan env --json > "$OUT/env.json" || status=1
run bench28 sh -c "medgan bench dcgan --size 28 --batch 128 --device cuda --seconds 15 > '$OUT/bench_28_eager.json'"
run bench64 sh -c "medgan bench dcgan --size 64 --batch 128 --device cuda --seconds 15 > '$OUT/bench_64_eager.json'"
run bench64c sh -c "medgan bench dcgan --size 64 --batch 128 --device cuda --seconds 15 --compile on > '$OUT/bench_64_compiled.json'"
run nb03 timeout 330 medgan run 03 -p IMAGE_SIZE 64 -p TIME_BUDGET_MIN 3.0 --out "$OUT/nb03"
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for f in sorted(out.glob("bench_*.json")):
    try:
        r = json.loads(f.read_text())
    except ValueError:
        print(f"{f.name}: unreadable"); continue
    print(f"{f.name}: {r['device_name']} | best {r['precision']} {r['ours_best_img_s']} img/s | fp32 {r['ours_fp32_img_s']} "
          f"| tutorial {r['reference_img_s']} | ratios {r['ratios']}")
res = out / "nb03" / "03_dcgan" / "results.json"
if res.exists():
    m = json.loads(res.read_text())["metrics"]
    print("03:", {k: m.get(k) for k in ("image_size", "epochs", "img_per_s", "fd_ratio", "precision", "recall")})
PY
exit $status
