"""Training-step time and peak memory of the same student trained with every registered method, side by side in one run.

The learners train in interleaved rounds (CE, KD, DIH, ..., CE, KD, DIH, ...), so that whatever else the
machine is doing slows them all alike; the figures are medians over every timed step, and the headline is
the ratios to CE and to KD. Every method runs in its default setting, built from the registry as `distill`
builds it; TAKD and DGKD get an untrained assistant (`--assistant`), DIH untrained heads: weights do not change
what a step costs. Memory per method: on a GPU the peak memory allocated; on the CPU, where PyTorch keeps no such
count, the bytes that autograd saves for the backward pass of a step (the memory a step's graph holds: this
is where a teacher run with autograd on would show).

    python benchmarks/step_time.py                      # ResNet-56 teacher, ResNet-8 student, embedded Fashion-MNIST, every method
    python benchmarks/step_time.py --teacher resnet110 --steps 50 --rounds 5 --methods ce kd dih
"""
import argparse, json, platform, statistics, sys, time
from datetime import datetime, timezone
from pathlib import Path

import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.learner import Learner
from fastai.torch_core import set_seed

from ihkd.core import defaults
from ihkd.data import fashion_mnist
from ihkd.heads import HeadedModel
from ihkd.models import get_model
from ihkd.core import versions
from ihkd.methods import METHODS, get_method
from ihkd.recipe import reference_opt

class StepTimer(Callback):
    "Times each training step (forward, teacher, loss, backward, optimizer step) and stops after `steps` steps."
    order = -100 # before every other callback's `before_batch`
    def __init__(self, steps, sync): self.steps,self.sync,self.times = steps,sync,[]
    def before_batch(self):
        if self.training: self.sync(); self.t0 = time.perf_counter()
    def after_batch(self):
        if not self.training: return
        self.sync(); self.times.append(time.perf_counter()-self.t0)
        if len(self.times) >= self.steps: raise CancelFitException()

def build(args):
    "Data, teacher with heads, an assistant, and one learner per method, all on the same device."
    set_seed(0)
    dls = fashion_mnist('embedded', bs=args.bs, device=args.device)
    n_out, c_in = dls.c, dls.one_batch()[0].shape[1]
    teacher = get_model(args.teacher, n_out, c_in).to(args.device)
    hm = HeadedModel(teacher, input_shape=(c_in, 28, 28))
    hm.heads_trained = True # timing only: the weights do not change the cost of a step
    assistant = get_model(args.assistant, n_out, c_in).to(args.device)
    opts = dict(alpha=defaults.alpha, T=defaults.T, mode=defaults.mode, drop=defaults.drop, quiet=True)
    def cbs(m):
        needs = get_method(m).needs
        return get_method(m).cbs(hm if 'heads' in needs else teacher, [assistant] if 'assistant' in needs else [], **opts)
    return {m: Learner(dls, get_model(args.student, n_out, c_in), opt_func=reference_opt(), cbs=cbs(m)) for m in args.methods}

def sync_for(device):
    return torch.cuda.synchronize if str(device).startswith('cuda') else (lambda: None)

def time_steps(args, learners, sync):
    "Median step time of each method over interleaved rounds; the first `warmup` steps of each fit are not counted."
    times = {m: [] for m in args.methods}
    for _ in range(args.rounds):
        for m,learn in learners.items():
            timer = StepTimer(args.warmup+args.steps, sync)
            with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.1, cbs=timer)
            times[m] += timer.times[args.warmup:]
    return {m: statistics.median(t) for m,t in times.items()}

class SavedForBackward(Callback):
    "Bytes of the tensors autograd keeps for the backward pass of each training step: the memory that a step's graph holds."
    def __init__(self): self.steps = []
    def before_batch(self):
        if not self.training: return
        self.bytes, self.ctx = 0, torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self.ctx.__enter__()
    def pack(self, t): self.bytes += t.untyped_storage().nbytes(); return t
    def after_loss(self):
        if self.training: self.ctx.__exit__(None, None, None); self.steps.append(self.bytes)

def peak_memory(args, learners, sync):
    "Per method: peak GPU memory allocated (CUDA), or the largest autograd graph of a step (CPU), in MB."
    cuda, res = str(args.device).startswith('cuda'), {}
    for m,learn in learners.items():
        if cuda: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        saved = SavedForBackward()
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.1, cbs=[StepTimer(args.steps, sync), saved])
        res[m] = (torch.cuda.max_memory_allocated() if cuda else max(saved.steps))/2**20
    return res

def write(args, res):
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'step_time.json').write_text(json.dumps(res, indent=1))
    t, mem, kind = res['step_seconds'], res['peak_mb'], res['memory_kind']
    rows = [f"| method | step (ms) | vs CE | vs KD | {kind} (MB) | vs KD |", "|---|---:|---:|---:|---:|---:|"]
    rows += [f"| {get_method(m).label} | {1000*t[m]:.1f} | {t[m]/t['ce']:.3f} | {t[m]/t['kd']:.3f} | {mem[m]:.1f} | {mem[m]/mem['kd']:.2f} |" for m in args.methods]
    md = (f"# Step time and memory of each method\n\nTeacher {args.teacher} (with {res['n_heads']} paper heads for DIH), student {args.student}, "
          f"assistant {args.assistant} (TAKD, DGKD), batch {args.bs}, embedded Fashion-MNIST (1x28x28, {res['n_train']:,} training images), "
          f"{res['device']}. Median of {args.rounds} interleaved rounds x {args.steps} steps per method; memory over {args.steps} steps.\n\n" + '\n'.join(rows) +
          (f"\n\n**DIH / KD step time: {t['dih']/t['kd']:.3f}** (target: at most 1.05)." if {'dih', 'kd'} <= set(t) else '') + "\n\n"
          f"Command: `{res['command']}`  \nDate: {res['date']}  \nVersions: {res['versions']}\n")
    (out/'step_time.md').write_text(md)
    print(md)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--teacher', default='resnet56'); p.add_argument('--student', default='resnet8')
    p.add_argument('--bs', type=int, default=64); p.add_argument('--steps', type=int, default=30)
    p.add_argument('--warmup', type=int, default=3); p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    p.add_argument('--assistant', default='resnet20')
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS), help='which to time; ce and kd are always timed, the ratios need them')
    args = p.parse_args(); args.methods = list(dict.fromkeys(['ce', 'kd', *args.methods]))
    learners, sync = build(args), sync_for(args.device)
    steps = time_steps(args, learners, sync)
    mem = peak_memory(args, learners, sync)
    cuda = args.device.startswith('cuda')
    res = {'step_seconds': steps, 'peak_mb': mem,
           'memory_kind': 'peak GPU memory allocated' if cuda else 'autograd graph of a step',
           'ratios': {f'{m}/{b}': steps[m]/steps[b] for m in args.methods for b in ('ce', 'kd') if m!=b},
           'memory_ratios': {f'{m}/kd': mem[m]/mem['kd'] for m in args.methods if m!='kd'},
           'n_train': len(next(iter(learners.values())).dls.train_ds),
           'n_heads': len(HeadedModel(get_model(args.teacher, 10, 1), input_shape=(1,28,28)).layers),
           'device': torch.cuda.get_device_name() if cuda else f'CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)',
           'command': 'python ' + ' '.join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
           'date': datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'), 'versions': versions()}
    write(args, res)

if __name__ == '__main__': main()
