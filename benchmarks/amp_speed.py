"""Training and inference speed of each mixed-precision mode against float32, on this machine.

A 16-bit mode is only fast where the hardware computes it; elsewhere torch emulates it and every step slows down.
For each model and mode (float32, 'bf16', 'fp16'), in interleaved rounds so that other load hits them alike:
  train      one epoch of the training phase of a `Learner` under `to_amp` (forward, backward, SGD step)
  inference  forward passes over the same batches without gradients, under `autocasting` (as a soft-label cache is written)
Figures are images per second, medians over rounds, and their ratios to float32. Everything runs on the CPU; `amp_native`
records whether each mode is native there. Writes benchmarks/results/<name>.{json,md} (default amp_speed).

    OMP_NUM_THREADS=1 python benchmarks/amp_speed.py
    OMP_NUM_THREADS=1 python benchmarks/amp_speed.py --models resnet56 --rounds 5
    OMP_NUM_THREADS=1 python benchmarks/amp_speed.py --modes bf16 --name amp_speed_avx512   # another CPU, beside the first's file
"""
import argparse, json, os, statistics, sys, time, warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from fastai.callback.progress import ProgressCallback # `Learner.no_bar`
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.torch_core import set_seed

from ihkd.core import AMP_MODES, EmulatedPrecisionWarning, amp_native, autocasting, atomic_save, versions, write_text
from ihkd.data import fashion_mnist
from ihkd.fp16 import AnyDeviceMixedPrecision # `Learner.to_amp`
from ihkd.models import get_model
from timers import TrainTimer

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=['resnet8', 'resnet56'], help='zoo names')
    p.add_argument('--n_train', type=int, default=700, help='embedded Fashion-MNIST images (train + valid)')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--modes', nargs='+', default=list(AMP_MODES), choices=AMP_MODES, help='16-bit modes, each measured against float32')
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    p.add_argument('--name', default='amp_speed', help="the results files' stem: name another machine's figures so that they sit beside the first's")
    return p.parse_args(argv)

def train_speed(dls, name, amp):
    "Images per second of one training epoch of a fresh `name` in mode `amp`."
    learn = Learner(dls, get_model(name, 10, 1), loss_func=CrossEntropyLossFlat(), cbs=TrainTimer())
    if amp: learn.to_amp(amp)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    return len(dls.train)*dls.train.bs/learn.train_timer.times[0]

def inference_speed(dls, model, amp):
    "Images per second of forward passes over the training batches, without gradients, in mode `amp`."
    model.eval(); n, t0 = 0, time.perf_counter()
    with torch.no_grad(), autocasting(model, amp):
        for x,_ in dls.train: model(x); n += len(x)
    return n/(time.perf_counter()-t0)

def main(argv=None):
    a = parse(argv)
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 1)))
    warnings.simplefilter('ignore', EmulatedPrecisionWarning) # emulation is what this measures: `amp_native` records it
    set_seed(0)
    dls = fashion_mnist('embedded', bs=a.bs, n_train=a.n_train, augment=False, device='cpu')
    models, modes = {m: get_model(m, 10, 1) for m in a.models}, (None, *a.modes)
    speed = {m: {str(amp): {'train': [], 'inference': []} for amp in modes} for m in a.models}
    for r in range(a.rounds + 1): # round 0 warms up and is dropped
        for m in a.models:
            for amp in modes:
                tr, inf = train_speed(dls, m, amp), inference_speed(dls, models[m], amp)
                if r: speed[m][str(amp)]['train'].append(tr); speed[m][str(amp)]['inference'].append(inf)
                print(f"round {r}{' (warm-up)' if not r else ''}: {m} {amp or 'float32'}: train {tr:.0f}, inference {inf:.0f} images/s", flush=True)
    res = {'command': f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python benchmarks/amp_speed.py {' '.join(sys.argv[1:] if argv is None else argv)}".strip(),
           'date': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'versions': versions(), 'cores': os.cpu_count(),
           'threads': torch.get_num_threads(), 'args': vars(a), 'images_per_epoch': len(dls.train)*a.bs,
           'native': {amp: amp_native(amp, 'cpu') for amp in a.modes}, 'images_per_s': speed}
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    atomic_save(json.dumps(res, indent=1), out/f'{a.name}.json', save=write_text)
    atomic_save(table(res), out/f'{a.name}.md', save=write_text)
    print(table(res))

def table(res) -> str:
    "The markdown report of a results dict: medians and their ratios to float32."
    v, rows = res['versions'], []
    for m, by in res['images_per_s'].items():
        med = {amp: {k: statistics.median(x) for k,x in d.items()} for amp,d in by.items()}
        for amp in by:
            native = 'yes' if amp=='None' else ('yes' if res['native'][amp] else '**no: emulated**')
            rows.append(f"| {m} | {'float32' if amp=='None' else amp} | {native} | {med[amp]['train']:.0f} | {med[amp]['train']/med['None']['train']:.2f} "
                        f"| {med[amp]['inference']:.0f} | {med[amp]['inference']/med['None']['inference']:.2f} |")
    return '\n'.join([
        "# Mixed precision against float32", "",
        f"CPU ({v['machine']}, instruction set {v['cpu_isa']}, {res['cores']} cores, {res['threads']} thread(s)), device {v['device']}; "
        f"embedded Fashion-MNIST, {res['images_per_epoch']} training images per epoch in batches of {res['args']['bs']}; medians of "
        f"{res['args']['rounds']} interleaved rounds after a warm-up; torch {v['torch']}, fastai {v['fastai']}, ihkd {v['ihkd']}; {res['date']}.", "",
        "| model | mode | native (`amp_native`) | train (images/s) | vs float32 | inference (images/s) | vs float32 |",
        "|---|---|---|---:|---:|---:|---:|", *rows, "", f"Command: `{res['command']}`", ""])

if __name__=='__main__': main()
