#!/bin/bash
# GPU check: image BC (conv encoder) and image Diffusion (ResNet encoder) trained on CUDA from
# 100 MuJoCo push demonstrations, checkpoints back for evaluation on the CPU machine; image BC
# training speed on the CPU against CUDA in one process.
# Local dry run: PY=.venv/bin/python DEV=cpu BC_STEPS=20 DIFF_STEPS=20 SPEED_STEPS=5 OUT=/tmp/o
set -o pipefail
PY=${PY:-python3}; DEV=${DEV:-cuda}
if [ "$PY" = python3 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
W=outputs/vision_work; T0=$(date +%s)
left() { echo $(( $1 - ($(date +%s) - T0) )); }
nproc; uptime; nvidia-smi --query-gpu=name,memory.total --format=csv
$PY -c "import torch, zarr, imagecodecs, tyro; print('torch', torch.__version__, torch.cuda.is_available())" || exit 1
CELL="--cells --tasks push --observations image --counts 100 --recording 100 --work $W --train-only"
CROP="--policy.image-crop 46 20 40 56 --save-every 1000 --device $DEV"
timeout $(left 200) $PY benchmarks/vision.py $CELL --policies bc --steps ${BC_STEPS:-10000} \
  --aux-weight 1 --extra="$CROP" 2>&1 | tr '\r' '\n' | grep -v "it/s]$" | tee $OUT/bc_conv.log
echo "bc done at $(( $(date +%s) - T0 )) s"
timeout $(left 430) $PY benchmarks/vision.py $CELL --policies diffusion --steps ${DIFF_STEPS:-6000} \
  --extra="--policy.image-encoder resnet $CROP" 2>&1 | tr '\r' '\n' | grep -v "it/s]$" | tee $OUT/diffusion_resnet.log
echo "diffusion done at $(( $(date +%s) - T0 )) s"
timeout $(left 530) $PY benchmarks/vision.py --speed --speed-devices cpu $DEV --speed-threads 16 \
  --speed-steps ${SPEED_STEPS:-100} --work $W 2>&1 | tee $OUT/speed.log
echo "speed done at $(( $(date +%s) - T0 )) s"
cd $W/runs && for r in *; do
  last=$(ls -d $r/checkpoints/step_* | tail -1)
  tar czf $OUT/$r.tgz $last $(ls $r/*.json $r/*.csv $r/*.jsonl 2>/dev/null)
done
ls -la $OUT
