"""Head-training epoch time against a teacher-training epoch, uncached and on cached backbone features.

Variants, interleaved round by round so that other load on the machine hits them alike:
  teacher       one CE training epoch of the teacher (forward + backward + SGD step)
  heads         one head-training epoch with `heads_learner` (frozen backbone, no autograd in it)
  heads_skip    the same plus `SkipClassifier` (the forward stops at the deepest head)
  heads_cached  one epoch of `cached_heads_learner` on float16 features (the one-off caching is timed apart)
Only the training phase of each epoch is timed (validation is switched off). Figures are ratios to the teacher epoch
of the same round; the tables give medians over rounds. Writes benchmarks/results/heads_speed.{json,md}.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/heads_speed.py
"""
import argparse, json, os, statistics, sys, time
from datetime import datetime, timezone
from pathlib import Path

import torch
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.torch_core import set_seed

from ihkd.heads import HeadedModel, paper_head, pooled_head
from ihkd.callbacks import heads_learner
from ihkd.data import fashion_mnist
from ihkd.models import get_model
from ihkd.core import versions
from ihkd.fast_heads import SkipClassifier, cached_heads_learner, cache_features, feature_bytes
from timers import TrainTimer

TARGETS = {'heads': 0.40, 'heads_skip': 0.40, 'heads_cached': 0.05}

def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default='resnet20', help='teacher, a zoo name')
    p.add_argument('--head', default='paper', choices=['paper', 'pooled'])
    p.add_argument('--n-train', type=int, default=3000, help='Fashion-MNIST images (train + valid)')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    return p.parse_args()

def main():
    a = parse()
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 1)))
    set_seed(0)
    dls = fashion_mnist(bs=a.bs, n_train=a.n_train, augment=False, device='cpu')
    teacher = get_model(a.model, 10, 1)
    hm = HeadedModel(teacher, head={'paper': paper_head, 'pooled': pooled_head}[a.head], input_shape=(1,28,28))
    def run(variant):
        if variant=='teacher': learn = Learner(dls, teacher, loss_func=CrossEntropyLossFlat(), cbs=TrainTimer())
        elif variant=='heads_cached': learn = cached
        else: learn = heads_learner(dls, hm, cbs=[TrainTimer(), *([SkipClassifier()] if variant=='heads_skip' else [])])
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        return learn.train_timer.times[0]
    t0 = time.perf_counter()
    cached = cached_heads_learner(dls, hm, cbs=TrainTimer())
    cache_secs = time.perf_counter() - t0
    variants = ['teacher', 'heads', 'heads_skip', 'heads_cached']
    for v in variants: run(v) # warm-up
    secs = {v: [] for v in variants}
    for r in range(a.rounds):
        for v in variants: secs[v].append(run(v))
        print(f"round {r+1}/{a.rounds}: " + ', '.join(f"{v} {secs[v][-1]:.2f}s" for v in variants), flush=True)
    ratios = {v: [s/t for s,t in zip(secs[v], secs['teacher'])] for v in variants[1:]}
    res = {'command': 'OMP_NUM_THREADS=%s %s' % (os.environ.get('OMP_NUM_THREADS', ''), ' '.join([sys.executable.replace(os.getcwd()+'/', ''), *sys.argv])),
           'date': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'versions': versions(), 'cpus': os.cpu_count(),
           'threads': torch.get_num_threads(), 'args': vars(a), 'batches_per_epoch': len(dls.train),
           'head_layers': hm.layers, 'cache_bytes': feature_bytes(hm, len(dls.train.dataset)+len(dls.valid.dataset)),
           'cache_secs': cache_secs, 'epoch_secs': secs,
           'ratio_to_teacher': {v: {'median': statistics.median(r), 'all': r, 'target': TARGETS[v]} for v,r in ratios.items()}}
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out/'heads_speed.json').write_text(json.dumps(res, indent=1))
    (out/'heads_speed.md').write_text(table(res))
    print(table(res))

def table(res):
    a,med = res['args'],lambda v: statistics.median(res['epoch_secs'][v])
    rows = [f"| teacher epoch (CE, fwd+bwd) | {med('teacher'):.3f} | 1 | - |"]
    names = {'heads': 'head epoch, uncached', 'heads_skip': 'head epoch, uncached + SkipClassifier', 'heads_cached': 'head epoch, cached fp16 features'}
    for v,r in res['ratio_to_teacher'].items():
        rows.append(f"| {names[v]} | {med(v):.3f} | **{r['median']:.3f}** ({min(r['all']):.3f}-{max(r['all']):.3f}) | <= {r['target']:.2f} {'met' if r['median']<=r['target'] else 'MISSED'} |")
    return '\n'.join([
        f"# Head training vs teacher training, one epoch ({a['model']}, {a['head']} heads on {', '.join(res['head_layers'])})", '',
        f"Fashion-MNIST, {res['batches_per_epoch']} training batches of {a['bs']} per epoch, {a['rounds']} interleaved rounds after a warm-up, "
        f"training phase only; {res['threads']} thread(s) on a {res['cpus']}-core {res['versions']['machine']} machine shared with other jobs, "
        f"{res['versions']['device']} (no GPU here: GPU figures not measured); torch {res['versions']['torch']}, fastai {res['versions']['fastai']}; {res['date']}.", '',
        '| variant | median epoch (s) | ratio to teacher epoch, median (range) | target |', '|---|---|---|---|', *rows, '',
        f"Caching the features once (train + valid, {res['cache_bytes']/2**20:.1f} MB in float16) took {res['cache_secs']:.2f} s, "
        f"{res['cache_secs']/med('teacher'):.2f} teacher epochs.", '', f"Command: `{res['command']}`", ''])

if __name__=='__main__': main()
