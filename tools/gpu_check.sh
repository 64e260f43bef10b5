#!/usr/bin/env bash
# The one-call GPU check (issue 24): run it whenever a GPU is available, then copy the card's name, the date and
# the numbers of OUT/gpu_check.json into BENCHMARKS.md. About 8 minutes on one GPU (a 10-minute budget).
#   bash tools/gpu_check.sh [OUT_DIR]            # default OUT_DIR: runs/gpu_check
#   bash tools/gpu_check.sh --dry-run [OUT_DIR]  # no GPU needed: list every check and its command
# Checks: medgan env; forced fp16 with d_steps=2; a 2-process DDP run on one GPU (or two); compile=True with
# TORCH_LOGS=recompiles,graph_breaks,cudagraphs and the steady-state rate; the three benchmark ratios at 28 and
# 64 px; the fixed feature net on CPU against GPU; notebooks 03-08 in fast mode. medgan_utils/tools/gpu_check.py
# does the work. Set MEDGAN_DATA_DIR to a folder with the datasets when the machine has no network.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Python that runs the course: $PYTHON, else the one the `medgan` command uses, else ./.venv, else python3.
PY="${PYTHON:-}"
if [ -z "$PY" ] && command -v medgan >/dev/null 2>&1; then PY="$(head -n 1 "$(command -v medgan)" | sed 's/^#!//')"; fi
if [ -z "$PY" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
exec ${PY:-python3} -m medgan_utils.tools.gpu_check "$@"
