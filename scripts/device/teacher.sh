# On a device machine (see scripts/device/carry.sh): train a teacher on the GPU, with the float32 grid's heads for more seeds beside it,
# and hand back what this CPU machine goes on from: the teacher's folder (record, log, epoch checkpoint and best epoch; its teacher.pth
# if it finished) and the shared heads each seed made. A teacher stopped at DEADLINE resumes here with the same `ihkd teacher` command.
# To resume on another call, put the folder of teacher.tar in .gpu/teacher before carrying .gpu.
# Measured on an H100 (2026-11-28), ResNet-56 on full Fashion-MNIST at batch 64 in float32: 31-35 s per epoch beside two heads
# processes (one seed's paper heads took 48 s), 24-29 s alone; launch-bound, so a 50-epoch teacher needs about 25 min, more than a
# session's device time: the calls hand it back, and this machine resumes it.
# Env: TEACHER (resnet56; none: the heads alone), EPOCHS (50), SEED (42), DATA (fashion-mnist), HEAD_SEEDS ("1 2"; "" for none), DEADLINE (seconds, 480).
source "$(dirname "$0")/setup.sh"
TEACHER=${TEACHER:-resnet56}; EPOCHS=${EPOCHS:-50}; SEED=${SEED:-42}; DATA=${DATA:-fashion-mnist}
HEAD_SEEDS=${HEAD_SEEDS-1 2}; DEADLINE=${DEADLINE:-480}; T=${T:-/tmp/teacher}
[ -d .gpu/teacher ] && [ ! -d $T ] && cp -r .gpu/teacher $T # a teacher folder an earlier call handed back: resumed, on the GPU too
t0=$(date +%s); heads0=$(ls $W/shared/heads-*.json 2>/dev/null | wc -l)
cmd="ihkd teacher --data $DATA --teacher $TEACHER --train_teacher --teacher_epochs $EPOCHS --seed $SEED --quiet"
teacher=""; if [ "$TEACHER" != none ]; then # with none, no teacher trains, and command.txt and teacher.tar name none
    echo "$cmd --out <folder>" > $OUT/command.txt
    $PY -c "from ihkd.cli import main; main()" ${cmd#ihkd } --out $T > $OUT/teacher.log 2>&1 & teacher=$!; fi
helpers=""
for s in $HEAD_SEEDS; do # --prepare makes the heads, then the caches, which cannot travel back (200 MB a seed): stopped once the heads are in
    $PY benchmarks/capacity_gap.py --name capacity_gap_e50_fp32_teacher50 --work $W --epochs 50 --students resnet8_quarter --variants dih \
        --seeds $s --prepare > $OUT/heads-s$s.log 2>&1 & helpers="$helpers $!"
done
pack() { # each file whole or not at all: a call cut short by the device's time limit still brings the last pack back
    [ -n "$teacher" ] && [ -d $T ] && tar -cf $OUT/.teacher.tar -C $T . && mv $OUT/.teacher.tar $OUT/teacher.tar
    tar -cf $OUT/.heads.tar -C $W/shared $(cd $W/shared && ls heads-*) && mv $OUT/.heads.tar $OUT/heads.tar; }
while [ $(( $(date +%s)-t0 )) -lt $DEADLINE ] && { kill -0 $teacher 2>/dev/null || [ -n "$helpers" ]; }; do # until both are done
    sleep 10
    n=$(ls $W/shared/heads-*.json 2>/dev/null | wc -l)
    if [ -n "$helpers" ] && [ $((n-heads0)) -ge $(echo $HEAD_SEEDS | wc -w) ]; then kill $helpers; helpers=""; echo "heads done at $(( $(date +%s)-t0 )) s"; fi
    [ $(( ($(date +%s)-t0) % 60 )) -lt 10 ] && echo "== $(( $(date +%s)-t0 )) s: $(tail -1 $T/logs/teacher.csv 2>/dev/null)" && pack
done
kill $teacher $helpers 2>/dev/null; wait
echo "stopped at $(( $(date +%s)-t0 )) s"; tail -3 $T/logs/teacher.csv 2>/dev/null
pack; ls -la $OUT
