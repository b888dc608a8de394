#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one pass (a lent GPU machine's time is short).
#
#   bash benchmarks/gpu_check.sh          # logs under $OUT, or ./gpu_out
#
# Needs CuPy, PyTorch with CUDA, pytest, Hypothesis and SciPy on the machine.
# Packages it lacks can be brought as wheels in ./.whl (array-api-compat,
# array-api-strict, unit-scaling and its docstring-parser, and a wheel of
# uscale_ref itself for the pytest plugin's entry point); they are installed
# into /tmp/site. Each step has its own time limit; the exit status is
# non-zero if any step failed or ran out of time. Steps:
#   1. the test suite's CuPy cases (every test parametrized over backends);
#   2. uscale_ref on CuPy, and on torch and JAX arrays on the GPU, against the
#      golden cases and drawn problems (JAX, which compiles every new shape,
#      on fewer drawn ones);
#   3. upstream + torch on the GPU against the goldens, with TF32 (torch's
#      default: precision "tf32") and without it (precision "exact");
#   4. uscale-ref bench --device cuda (both sides in float32, TF32 off).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=$PWD:/tmp/site
fi
failed=()
step() {  # step NAME SECONDS COMMAND...: run, log to $OUT/NAME.log, note a failure
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n "${TAIL:-12}" "$OUT/$name.log"
  echo "-- $name: rc=$rc in $((SECONDS - start)) s"
  [ "$rc" -eq 0 ] || failed+=("$name(rc=$rc)")
}

nvidia-smi -L
$PY -c "import sys, numpy, cupy, torch; print(sys.version.split()[0], 'numpy', numpy.__version__,
  'cupy', cupy.__version__, 'torch', torch.__version__, torch.cuda.get_device_name())"

workers=()
if $PY -c "import xdist" 2>/dev/null; then workers=(-n 4); fi
TAIL=6 step cupy-tests 180 $PY -m pytest -q -p no:cacheprovider "${workers[@]}" -k "cupy or cuda" \
  tests
step cupy-conformance 90 $PY benchmarks/gpu_conformance.py --drawn 50
step torch-cuda-conformance 60 $PY benchmarks/gpu_conformance.py --library torch --drawn 50
step jax-gpu-conformance 240 $PY benchmarks/gpu_conformance.py --library jax --drawn 10
TAIL=2 step upstream-cuda-tf32 60 $PY examples/upstream_against_goldens.py --device cuda
TAIL=2 step upstream-cuda-exact 60 $PY examples/upstream_against_goldens.py --device cuda \
  --no-tf32
TAIL=30 step bench-cuda 150 $PY -m uscale_ref bench --device cuda --same-process --repeats 20 \
  --markdown

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all GPU checks passed"
