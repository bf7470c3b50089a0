#!/bin/bash
# The GPU checks of issue 28 as one command for a device machine (about 9 minutes on an H100), each part
# writing its log to $OUT: the conformance matrix on JAX with the TF32 bound, then bench_gpu.py on JAX (full
# size) and on PyTorch (smaller: its engine ran at 0.68 points/s before). Run it from the repository root:
#
#   bash benchmarks/gpu_session.sh                # on the device machine, carrying .whl (see CONTRIBUTING.md)
#   QUICK=1 NO_INSTALL=1 bash benchmarks/gpu_session.sh   # tiny sizes on a CPU, to check the script first
set -u
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
if [ -z "${NO_INSTALL:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
(nvidia-smi -L 2>/dev/null || echo "no GPU") | tee "$OUT/device.txt"
if [ -n "${QUICK:-}" ]; then
    jax_sizes="--samples 64 --points 3 --engine-points 2 --k 2"
    torch_sizes=$jax_sizes
else
    jax_sizes="--samples 10000 --points 21 --engine-points 8 --k 8 32"
    torch_sizes="--samples 2000 --points 9 --engine-points 4 --k 8"
fi
KERAS_BACKEND=jax timeout 150 python3 -m pytest -q -n 0 -p no:cacheprovider -m "not slow" \
    tests/test_conformance.py tests/test_batch_size_choice.py 2>&1 | tail -n 30 | tee "$OUT/conformance_jax.txt"
# shellcheck disable=SC2086  # the sizes are several arguments
timeout 300 python3 benchmarks/bench_gpu.py --backends jax $jax_sizes --stage-timeout 140 \
    --save "$OUT/bench_gpu_jax.txt"
# shellcheck disable=SC2086
timeout 150 python3 benchmarks/bench_gpu.py --backends torch $torch_sizes --stage-timeout 60 \
    --save "$OUT/bench_gpu_torch.txt"
cat "$OUT"/bench_gpu_*.txt
