#!/usr/bin/env bash
# One lease of a GPU machine (the device tool): CUDA tests, then the benchmark at GPU scale.
# Run from the repository root with .whl carried (skorch, opacus, BackPACK, dask: pure-Python
# wheels for the machine's Python; see docs/performance.md). Logs go to $OUT.
#   bash benchmarks/gpu_check.sh [all|tests|bench]
set -u
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
MODE=${1:-all}
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks FAILURES_FILE=$OUT/failures.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
step() {  # step NAME SECONDS COMMAND...: time-boxed, logged, never stops the script
    local name=$1 limit=$2; shift 2
    echo "=== $name (limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "=== $name: rc=$? in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
    tail -n 25 "$OUT/$name.log"
}
{ nvidia-smi -L; python3 -c "import torch, sklearn, numpy; print('torch', torch.__version__,
  'cuda', torch.version.cuda, torch.cuda.get_device_name(), 'sklearn', sklearn.__version__,
  'numpy', numpy.__version__)"; nproc; } 2>&1 | tee "$OUT/summary.txt"
# one thread per pytest worker: 14 workers x 16 threads oversubscribe the 16 cores
PYTEST="env OMP_NUM_THREADS=1 python3 -m pytest -q -p no:cacheprovider -p failures_to_file -rfEs"
if [ "$MODE" != bench ]; then
# 1. CUDA tests, and the float64-reference zoo with the features computed on the GPU
step cuda_tests 100 env SKGRADUNC_TEST_DEVICE=cuda $PYTEST -n 8 tests/test_cuda.py \
    tests/test_gradient_reference.py tests/test_layer_local.py
# 2. the rest of the suite, every estimator on its default device (auto: the GPU)
step suite 150 $PYTEST -n 14 tests --ignore=tests/test_cuda.py \
    --ignore=tests/test_gradient_reference.py --ignore=tests/test_layer_local.py
fi
if [ "$MODE" != tests ]; then
# 3. the benchmark at GPU scale, on a quiet machine
step bench_cnn 150 python3 benchmarks/bench_transformer.py --device cuda --batch-size 4096 \
    --n 200000 --naive-n 1024 --repeats 3
step phases 40 python3 benchmarks/bench_transformer.py --device cuda --batch-size 4096 --phases
step bench_resnet18 120 python3 benchmarks/bench_transformer.py --model resnet18 --device cuda \
    --batch-size 512 --n 4096 --naive-n 64 --repeats 2
fi
# 4. README's main job on the GPU
step main_job 90 python3 -m skgradunc --out /tmp/main-job
cat "$OUT/summary.txt"
