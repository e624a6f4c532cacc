#!/usr/bin/env bash
# The prepared device check (docs/gpu.md): the shipped models on CUDA against CPU, Table VII,
# mmtok bench, the streaming predictor (CUDA graphs, torch.compile) and onnxruntime's CUDA
# execution provider, in one run of at most 8 minutes. Writes device_check.json, .md and .log
# under $OUT (default results/device_check). Extra arguments go to
# `python -m mmtok_ros.bench.device_check` (--device cpu --dry: the small run of make test).
# Exit status: 0 when it ran (parts that failed are marked in the JSON), 2 when the device
# asked for is not there (one line on stderr), 124 when the whole run outlived its timeout.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export OUT=${OUT:-results/device_check}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
# no ROS is needed or wanted on this path: --forbid-ros makes any ROS import an error
exec timeout --kill-after=10 "${DEVICE_CHECK_TIMEOUT:-480}" \
    "$PY" -m mmtok_ros.bench.device_check --forbid-ros --out "$OUT" "$@"
