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
LIMIT=${GPU_MEASURE_LIMIT:-470}          # seconds, hard stop of the driver (its own budget is 420)
case " $* " in *" --cpu-smoke "*) LIMIT=${GPU_MEASURE_LIMIT:-1500} ;; esac   # a busy 2-core CPU
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 3; }
  # the nvjpeg2k wheel ships nvidia/__init__.py: without it nvidia/ stays a namespace package
  # shared with the image's own nvidia-* wheels (cuBLAS, cuDNN, ... that torch loads)
  rm -f /tmp/site/nvidia/__init__.py
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# nvImageCodec dlopens nvJPEG2000 and the CUDA runtime: every nvidia/*/lib folder on sys.path
NVLIBS=$("$PY" - <<'PYEOF'
import glob, os, sys
dirs = [d for base in sys.path if base for d in glob.glob(os.path.join(base, "nvidia", "*", "lib"))]
print(":".join(dict.fromkeys(d for d in dirs if os.path.isdir(d))))
PYEOF
)
[ -n "$NVLIBS" ] && export LD_LIBRARY_PATH=$NVLIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || true
"$PY" -c "from nvidia import nvimgcodec; print('nvImageCodec', nvimgcodec.__version__)" 2>&1 | tail -1 || true
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
set -o pipefail
timeout -k 10 "$LIMIT" "$PY" bench/gpu_measure.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_measure.log"
rc=$?
echo "gpu_measure exit $rc; files in $OUT:"; ls -la "$OUT"
exit $rc
