# Fill .gpu/ (git-ignored: add `/.gpu/` to .git/info/exclude) with what the device machines' image lacks, to `carry`:
# the pure-Python packages ihkd imports beyond that image (fastai and friends), Fashion-MNIST, and the grid's shared teacher and heads.
# Usage, from the repo root: bash scripts/device/carry.sh [WORK]; then call the device with carry [".gpu"] and `bash scripts/device/grid.sh`.
set -e
S=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -rf .gpu && mkdir -p .gpu/site .gpu/fmnist .gpu/shared
for p in fastai fastcore fastdownload fasthtml fastprogress fasttransform plum beartype defusedxml itsdangerous python_multipart starlette; do cp -r "$S/$p" .gpu/site/; done
find .gpu/site -name __pycache__ -prune -exec rm -rf {} +
cp /usr/share/datasets/fashion-mnist/* .gpu/fmnist/
W=${1:-runs/capacity-gap-e50-fp32-teacher50}; cp "$W"/shared/teacher-* "$W"/shared/heads-* .gpu/shared/ 2>/dev/null || true
du -sh .gpu
