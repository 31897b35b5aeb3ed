# On a device machine (see scripts/device/carry.sh): grid cells in parallel on the GPU, with a smoke run and nbs/11_fp16 (its `#| cuda` cell) beside them.
# Results, logs and the per-epoch progress land under $OUT. N processes, DEADLINE seconds; GRID overrides the cells.
# Measured on an H100 (2026-11-27), ResNet-8 students of the float32 grid at batch 64: 12 s per epoch with 3 processes side by side
# (GPU 84% busy), 21-22 s with 8 (CE, 2 epochs, a later probe), 36 s with 15; the three seeds' heads caches took about 7 min beside those 15.
# A 50-epoch cell thus needs 10 min or more, so one session's 15 device minutes finish no cell of that grid: GPU time pays off for grids
# whose cells fit it. Those processes took turns on the GPU; MPS=1 starts NVIDIA's Multi-Process Service, which runs their small kernels
# side by side. It started on an H100 and served a CUDA op there (2026-11-27); what it does to the grid's speed is not measured yet.
source "$(dirname "$0")/setup.sh"
N=${N:-18}; DEADLINE=${DEADLINE:-500}
GRID=${GRID:---epochs 50 --students resnet8_quarter --variants ce kd dih dih_norm dih_cal}  # the float32 grid (capacity_gap_e50_fp32_teacher50): merge with --merge
mkdir -p $OUT/logs
if [ "${MPS:-0}" = 1 ]; then export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log; mkdir -p /tmp/mps /tmp/mps-log; nvidia-cuda-mps-control -d || exit 1; fi
t0=$(date +%s)
$PY benchmarks/capacity_gap.py --data embedded --n_train 1000 --teacher resnet20 --students resnet8_quarter --variants ce kd dih dih_cal --epochs 1 --seeds 0 \
    --out /tmp/smoke --work /tmp/smoke-work --amp bf16 > $OUT/smoke.log 2>&1 & smoke=$!
$PY scripts/device/run_notebook.py nbs/11_fp16.ipynb > $OUT/fp16.log 2>&1 &
pids=""
for i in $(seq $N); do $PY benchmarks/capacity_gap.py $GRID --out $OUT --name capacity_gap_gpu --work $W > $OUT/logs/p$i.log 2>&1 & pids="$pids $!"; sleep 0.5; done
progress() { echo "== $(( $(date +%s)-t0 )) s"; for f in $W/runs/*/*/logs/*.csv; do [ -f "$f" ] && echo "$f: $(( $(wc -l < $f)-1 )) epochs, last: $(tail -1 $f)"; done; grep -h "^seed" $OUT/logs/*.log; }
while [ $(( $(date +%s)-t0 )) -lt $DEADLINE ]; do
    sleep 15
    if [ -n "$smoke" ] && ! kill -0 $smoke 2>/dev/null; then wait $smoke || { echo SMOKE FAILED; tail -30 $OUT/smoke.log; kill $pids; break; }; echo "smoke ok at $(( $(date +%s)-t0 )) s"; smoke=""; fi
    alive=0; for p in $pids; do kill -0 $p 2>/dev/null && alive=1; done; [ $alive = 0 ] && break
    [ $(( ($(date +%s)-t0) % 60 )) -lt 15 ] && progress && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
done
kill $pids 2>/dev/null; progress > $OUT/progress.txt; cat $OUT/progress.txt; tail -3 $OUT/fp16.log
rm -f $OUT/.capacity_gap_gpu.lock; cd $OUT/logs && tail -n 40 p*.log > ../grid.log && cd .. && rm -rf logs; ls -la $OUT
if [ "${MPS:-0}" = 1 ]; then echo quit | nvidia-cuda-mps-control; fi
