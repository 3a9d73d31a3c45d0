#!/usr/bin/env bash
# GPU checks in one go (run on a CUDA machine from the repo root; an optional .whl/ of missing
# packages is installed first): the CUDA tests, then every figure of
# benchmarks/gpu_throughput.py (one CIFAR ResNet-20 trial against a plain DataLoader loop, and
# 1/2/4/8 trials per card through the Optuna workers and Ray), then the quickstart timings.
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, optuna; print('torch', torch.__version__, 'optuna', optuna.__version__)"
python3 -m pytest -q -p no:cacheprovider tests/gpu_tests tests/training_tests/test_host_syncs.py \
  tests/training_tests/test_speed_options.py -x 2>&1 | tail -5
python3 benchmarks/gpu_throughput.py --compile
work=$(mktemp -d)
for run in "cpu 1" "cuda 1" "cuda 4"; do
  set -- $run
  start=$(date +%s.%N)
  python3 -m prl_tune.cli tune studies/quickstart.toml --quiet \
    --storage "sqlite:///$work/$1-$2.db" --workers "$2" --set "task.device=\"$1\"" \
    | grep -E "best val_accuracy|by state"
  echo "quickstart device=$1 workers=$2: $(python3 -c "import time;print(round(time.time()-$start,1))") s"
done
