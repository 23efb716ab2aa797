#!/bin/bash
# GPU check of the whole online loop: `train_online --device cuda` on the MuJoCo reach task,
# straight against killed-and-resumed, and its checkpoint on the CPU (needs MuJoCo, carried
# as an xz-packed cp312 wheel).
set -o pipefail
source benchmarks/device/setup.sh
(cd /tmp && python3 -c "import mujoco, torch; print('mujoco', mujoco.__version__, torch.cuda.is_available())") || exit 1
timeout 400 pytest -q -p no:cacheprovider -m slow tests/policies/test_online_resume.py \
  -k "gpu" 2>&1 | tee $OUT/loop_tests.log
