#!/bin/bash
# The real online loop's env steps per second on ur5e:push (MuJoCo), plain OPT-AIL (CPU
# profile), one CPU thread against CUDA: 10 demonstrations recorded there, 3000 env steps,
# updates from step 500, no evaluation.
set -o pipefail
source benchmarks/device/setup.sh
export MUJOCO_GL=disable
cd /tmp && timeout 420 python3 -c "
import os, time
from robot_il.train.config import load_config
from robot_il.train.demos import record_expert_demos
from robot_il.train.online import train_online
data = record_expert_demos('push', '/tmp/push10', episodes=10, seed=0)
for device in ('cpu', 'cuda', 'cpu'):
    out = f'/tmp/run_{device}_{time.time_ns()}'
    config = load_config('opt_ail', None, ['--dataset', str(data), '--out', out,
        '--env-steps', '3000', '--learning-starts', '500', '--eval.every', '0',
        '--eval.episodes', '0', '--no-progress', '--device', device,
        '--policy.optimism-states', '128'])
    start = time.perf_counter()
    train_online(config)
    wall = time.perf_counter() - start
    print(f'{device}: 3000 env steps (2500 updates) in {wall:.1f} s: {3000 / wall:.1f} env steps/s, load {os.getloadavg()[0]:.2f}', flush=True)
" 2>&1 | grep -v Warning | tee $OUT/loop_speed.log
