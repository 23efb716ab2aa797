#!/bin/bash
# GPU check of the online learners (OPT-AIL, DAC, IQ-Learn, model-based OPT-AIL): their
# state restored bit-exactly on CUDA, a GPU-trained checkpoint acting the same on the CPU,
# and updates per second on the CPU (1 and 16 threads) against CUDA in one process.
set -o pipefail
source benchmarks/device/setup.sh
nproc; uptime; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
(cd /tmp && python3 -c "import torch, gymnasium, robot_il.train.online as o; print(torch.__version__, torch.cuda.is_available(), o.__file__)") || exit 1
timeout 200 pytest -q -p no:cacheprovider tests/policies/test_online_resume.py \
  -k "cuda or gpu" 2>&1 | tee $OUT/tests.log
timeout 330 python3 benchmarks/online_devices.py --devices cpu cuda --threads 1 16 \
  --results $OUT/online_devices.json 2>&1 | tee $OUT/speed.log
uptime
