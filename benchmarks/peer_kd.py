"""The same KD job with fasterai's `KnowledgeDistillationCallback` and with ihkd's `CohortDistill`, and DIH with ihkd.

One teacher, one student, the same data and batch size for every variant:
  ce                  the student alone, cross-entropy (reference)
  fasterai_kd         fasterai's callback as documented: `KnowledgeDistillationCallback(teacher, SoftTarget, weight=alpha)`
  fasterai_kd_frozen  the same with the teacher's parameters frozen by hand (`teacher.requires_grad_(False)`)
  ihkd_kd             `CohortDistill(teacher)`: KD as the cohort of one
  ihkd_dih            `CohortDistill(HeadedModel(teacher))`: the teacher's heads and classifier co-teach
Both KD losses are `alpha*T^2*KL + (1-alpha)*CE` with `alpha=0.1`, `T=5`; the script checks they agree on a batch.
Step time: training phase of one epoch / batches, variants interleaved round by round, medians over rounds.
Peak memory: each variant in a fresh process; the growth of the peak resident set over a training epoch
(Linux `VmHWM`, reset before `fit`), on the CPU. Writes benchmarks/results/peer_kd.{json,md}.

fasterai is installed outside the project's environment (it must not change its versions):
  .venv/bin/pip download fasterai==0.4.1 --no-deps -d /tmp/fa && unzip -q /tmp/fa/fasterai-0.4.1-py3-none-any.whl -d /tmp/fa/pkg
Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/peer_kd.py --fasterai /tmp/fa/pkg
"""
import argparse, json, os, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

import torch
from fastai.learner import Learner
from fastai.callback.core import Callback, CancelFitException
from fastai.data.core import DataLoaders
from fastai.losses import CrossEntropyLossFlat
from fastai.torch_core import set_seed

from ihkd.heads import HeadedModel
from ihkd.callbacks import CohortDistill
from ihkd.data import fashion_mnist
from ihkd.models import get_model
from ihkd.core import versions
from timers import TrainTimer

VARIANTS = ['ce', 'fasterai_kd', 'fasterai_kd_frozen', 'ihkd_kd', 'ihkd_dih']
ALPHA, T = 0.1, 5.

def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--fasterai', required=True, help='folder holding the unpacked fasterai package')
    p.add_argument('--teacher', default='resnet32')
    p.add_argument('--student', default='resnet8')
    p.add_argument('--n-train', type=int, default=1000, help='Fashion-MNIST images (train + valid)')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--memory', choices=VARIANTS, help='(internal) measure the peak memory of one variant and print it')
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    return p.parse_args()

def setup(a):
    sys.path.insert(0, a.fasterai)
    import fasterai
    from fasterai.distill.distillation_callback import KnowledgeDistillationCallback
    from fasterai.distill.losses import SoftTarget
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 1)))
    set_seed(0)
    dls = fashion_mnist(bs=a.bs, n_train=a.n_train, augment=False, device='cpu')
    teacher = get_model(a.teacher, 10, 1).eval()
    hm = HeadedModel(teacher, input_shape=(1,28,28))
    hm.heads_trained = True # timing only: trained or random heads cost the same
    def learner(variant, cbs=(), data=dls):
        teacher.requires_grad_(variant!='fasterai_kd_frozen')
        kd = {'ce': [], 'fasterai_kd': [KnowledgeDistillationCallback(teacher, SoftTarget, weight=ALPHA)],
              'fasterai_kd_frozen': [KnowledgeDistillationCallback(teacher, SoftTarget, weight=ALPHA)],
              'ihkd_kd': [CohortDistill(teacher, alpha=ALPHA, T=T)], 'ihkd_dih': [CohortDistill(hm, alpha=ALPHA, T=T)]}[variant]
        set_seed(0)
        return Learner(data, get_model(a.student, 10, 1), loss_func=CrossEntropyLossFlat(), cbs=[*kd, *cbs])
    return dls, teacher, learner, fasterai.__version__

class FirstLoss(Callback):
    order = 100
    def after_loss(self): self.value = self.learn.loss_grad.item(); raise CancelFitException()

def same_loss(learner, dls):
    "The first-batch loss of fasterai's KD and of ours, from the same student and batch."
    losses = []
    for v in ('fasterai_kd', 'ihkd_kd'):
        learn = learner(v, [cb := FirstLoss()], DataLoaders(dls.valid, dls.valid)) # unshuffled: the same first batch
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 0)
        losses.append(cb.value)
    return losses

def epoch_secs(learner, variant):
    learn = learner(variant, [TrainTimer()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return learn.train_timer.times[0]

def _kb(field):
    with open('/proc/self/status') as f: return next(int(l.split()[1]) for l in f if l.startswith(field+':'))

def peak_memory(learner, variant):
    "Growth of the peak resident set (bytes) over one training epoch, from the resident set just before `fit`."
    learn = learner(variant, [TrainTimer()])
    with open('/proc/self/clear_refs', 'w') as f: f.write('5') # reset VmHWM to the current VmRSS
    before = _kb('VmRSS')
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return (_kb('VmHWM') - before) * 1024

def main():
    a = parse()
    dls, teacher, learner, fa_version = setup(a)
    if a.memory: return print(json.dumps({'variant': a.memory, 'peak_bytes': peak_memory(learner, a.memory)}))
    losses = same_loss(learner, dls)
    for v in VARIANTS: epoch_secs(learner, v) # warm-up
    secs = {v: [] for v in VARIANTS}
    for r in range(a.rounds):
        for v in VARIANTS: secs[v].append(epoch_secs(learner, v))
        print(f"round {r+1}/{a.rounds}: " + ', '.join(f"{v} {secs[v][-1]:.2f}s" for v in VARIANTS), flush=True)
    mem = {}
    for v in VARIANTS:
        out = subprocess.run([sys.executable, *sys.argv, '--memory', v], capture_output=True, text=True, check=True).stdout
        mem[v] = json.loads(out.strip().splitlines()[-1])['peak_bytes']
    n = len(dls.train)
    step = {v: statistics.median(s)/n for v,s in secs.items()}
    res = {'command': 'OMP_NUM_THREADS=%s %s' % (os.environ.get('OMP_NUM_THREADS', ''), ' '.join([sys.executable.replace(os.getcwd()+'/', ''), *sys.argv])),
           'date': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'versions': {**versions(), 'fasterai': fa_version},
           'cpus': os.cpu_count(), 'threads': torch.get_num_threads(), 'args': vars(a), 'batches_per_epoch': n,
           'first_batch_loss': {'fasterai_kd': losses[0], 'ihkd_kd': losses[1]}, 'epoch_secs': secs, 'step_secs_median': step,
           'step_ratio_to_fasterai_kd': {v: statistics.median(x/y for x,y in zip(secs[v], secs['fasterai_kd'])) for v in VARIANTS},
           'peak_bytes': mem, 'peak_ratio_to_fasterai_kd': {v: mem[v]/mem['fasterai_kd'] for v in VARIANTS}}
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out/'peer_kd.json').write_text(json.dumps(res, indent=1))
    (out/'peer_kd.md').write_text(table(res))
    print(table(res))

def table(res):
    a = res['args']
    names = {'ce': 'CE only (reference)', 'fasterai_kd': 'fasterai KD', 'fasterai_kd_frozen': 'fasterai KD, teacher frozen by hand',
             'ihkd_kd': 'ihkd KD (`CohortDistill(teacher)`)', 'ihkd_dih': 'ihkd DIH (`CohortDistill(hm)`, 3 heads + classifier)'}
    rows = [f"| {names[v]} | {res['step_secs_median'][v]*1e3:.1f} | **{res['step_ratio_to_fasterai_kd'][v]:.2f}** | "
            f"{res['peak_bytes'][v]/2**20:.1f} | **{res['peak_ratio_to_fasterai_kd'][v]:.2f}** |" for v in VARIANTS]
    fl = res['first_batch_loss']
    return '\n'.join([
        f"# KD step time and memory: fasterai {res['versions']['fasterai']} vs ihkd (teacher {a['teacher']}, student {a['student']})", '',
        f"Fashion-MNIST, batch {a['bs']}, {res['batches_per_epoch']} training batches per epoch, {a['rounds']} interleaved rounds after a warm-up; "
        f"{res['threads']} thread(s) on a {res['cpus']}-core {res['versions']['machine']} machine shared with other jobs, {res['versions']['device']} "
        f"(no GPU here: GPU figures not measured); torch {res['versions']['torch']}, fastai {res['versions']['fastai']}; {res['date']}.", '',
        f"Same loss: the first-batch loss is {fl['fasterai_kd']:.6f} with fasterai's callback and {fl['ihkd_kd']:.6f} with ours.", '',
        '| variant | step (ms, median) | step time / fasterai KD | peak memory growth (MB) | peak / fasterai KD |', '|---|---|---|---|---|', *rows, '',
        "Peak memory: growth of the process's peak resident set over one training epoch (CPU), each variant in a fresh process.", '',
        f"Command: `{res['command']}`", ''])

if __name__=='__main__': main()
