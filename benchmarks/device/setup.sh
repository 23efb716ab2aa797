# Sourced by the GPU scripts here: install .whl/ (and the .whl.xz packed there) into
# /tmp/site for that machine's python3, and put it on the path.
python3 -c "
import glob, lzma, shutil
for f in glob.glob('.whl/*.whl.xz'):
    with lzma.open(f) as src, open('/tmp/' + f.split('/')[-1][:-3], 'wb') as dst:
        shutil.copyfileobj(src, dst)" || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl $(ls /tmp/*.whl 2>/dev/null) || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
