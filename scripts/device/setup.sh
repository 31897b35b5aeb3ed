# Sourced by grid.sh and teacher.sh on a device machine: the repo root, the environment both run in, and what carry.sh packed in .gpu/
# (the packages on PYTHONPATH, Fashion-MNIST where Debian's package puts it, the shared teacher and heads in the work folder $W).
cd "$(dirname "${BASH_SOURCE[0]}")/../.." && R=$PWD
export PYTHONPATH=$R/.gpu/site:$R PYTHONUNBUFFERED=1 MPLBACKEND=Agg OMP_NUM_THREADS=1 NVIDIA_TF32_OVERRIDE=0 # float32 in float32, not TF32, as the CPU computes it
PY=${PY:-python3}; W=${W:-/tmp/cgw}
mkdir -p /usr/share/datasets/fashion-mnist $W/shared && cp -n .gpu/fmnist/* /usr/share/datasets/fashion-mnist/ && cp -n .gpu/shared/* $W/shared/
command -v nvidia-smi >/dev/null && nvidia-smi -L
$PY -c "import torch, fastai, ihkd; print(torch.__version__, fastai.__version__, ihkd.__version__, torch.cuda.is_available())" || exit 1
