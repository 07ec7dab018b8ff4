#!/usr/bin/env bash
# The pipeline on a GPU machine that has JAX with CUDA but not this project's other packages:
# run from the repository root with the wheels in .whl/ and Fashion-MNIST's IDX files in
# .gpu-data/ (see docs/performance.md). Writes its results to $OUT (default ./gpu-out).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
export MLFLOW_TRACKING_URI=file:/tmp/gpu-store/mlruns MLFLOW_ALLOW_FILE_STORE=true
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import jax; print(jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"
# 1. Seconds per model-epoch of the population engine, K = 1, 10, 100, 1000 (54,000 images).
timeout 200 python3 bench/bench_population.py --data-dir .gpu-data --population-ks 1,10,100,1000 \
  --keras-ks "" --rounds 2 --out "$OUT/population_gpu.json" 2>&1 | tail -12
# 2. The pipeline's study: 2 configs x 50 seeds x 100 epochs on all of Fashion-MNIST, every run
#    logged to a local store.
start=$SECONDS
timeout ${STUDY_SECONDS:-330} python3 -m pipeline study --dataset fashion_mnist \
  --data-dir .gpu-data --backend jax --engine population --replicas 100 --seeds 50 \
  --epochs 100 --run-figures false --study-name gpu-study > "$OUT/study.log" 2>&1
echo "study exit $? wall $((SECONDS - start)) s" | tee -a "$OUT/gpu.txt"
tail -4 "$OUT/study.log"
grep -c "^epoch" "$OUT/study.log" | sed 's/^/epoch lines: /'
find /tmp/gpu-store/mlruns -name report.md -exec cp {} "$OUT/" \; 2>/dev/null
find /tmp/gpu-store/mlruns -path "*gpu-study*" -prune -o -name "meta.yaml" -print 2>/dev/null \
  | wc -l | sed 's/^/meta files: /'
