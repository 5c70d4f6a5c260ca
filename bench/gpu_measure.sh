#!/usr/bin/env bash
# Issue 13's GPU measurements in one run (bench/gpu_measure.py; bench/README.md "GPU
# measurements (issue 13)" gives the device `run` call). On the device machine: installs the
# wheels carried in .whl (pydicom and the J2K decoders for `vindr decode`, nvImageCodec + nvJPEG2000
# for --device cuda; torch, numpy, pandas, pyarrow, pillow, matplotlib, typer, rich, safetensors
# are already there), then runs the driver into $OUT within a hard limit. Extra arguments go to
# the driver (e.g. --cpu-smoke here, --models tiny small, --skip decode).
# Usage: OUT=DIR bash bench/gpu_measure.sh [driver args]   (PYTHON=... to pick the interpreter)
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-bench/results/gpu}
LIMIT=${GPU_MEASURE_LIMIT:-500}          # seconds, hard stop of the driver (its own budget is 450)
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 3; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  # nvImageCodec finds nvJPEG2000 through the nvidia/ namespace of the install target
  export LD_LIBRARY_PATH=/tmp/site/nvidia/nvjpeg2k/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
set -o pipefail
timeout -k 10 "$LIMIT" "$PY" bench/gpu_measure.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_measure.log"
rc=$?
echo "gpu_measure exit $rc; files in $OUT:"; ls -la "$OUT"
exit $rc
