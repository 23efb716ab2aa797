#!/bin/bash
# GPU check of the whole online loop: `train_online --device cuda` on the MuJoCo reach task,
# straight against killed-and-resumed, and its checkpoint on the CPU (needs MuJoCo, carried
# as an xz-packed cp312 wheel).
set -o pipefail
python3 -c "
import glob, lzma, shutil
for f in glob.glob('.whl/*.whl.xz'):
    with lzma.open(f) as src, open('/tmp/' + f.split('/')[-1][:-3], 'wb') as dst:
        shutil.copyfileobj(src, dst)" || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl /tmp/mujoco-*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
(cd /tmp && python3 -c "import mujoco, torch; print('mujoco', mujoco.__version__, torch.cuda.is_available())") || exit 1
timeout 400 pytest -q -p no:cacheprovider -m slow tests/policies/test_online_resume.py \
  -k "gpu" 2>&1 | tee $OUT/loop_tests.log
