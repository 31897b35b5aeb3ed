"""Channels last against the contiguous memory format on this machine: training speed, and the convolutions whose gradients it gets wrong.

`channels_last=True` (`--channels_last`) trains every step of a run with `CheckedChannelsLast`: the model's weights, and so its
activations, are laid out NHWC, which many convolution kernels run faster on. Two measurements, both written to
benchmarks/results/channels_last.{json,md}:

  speed   for each model and layout, in interleaved rounds so that other load hits them alike, one epoch of the training phase
          of a fresh `Learner` with the reference optimizer (forward, backward, SGD step; a cached KD or DIH student adds about
          3% to this). Images per second, medians over rounds, and the ratio of channels last to contiguous. A model that
          `CheckedChannelsLast` refuses on this CPU is listed as refused.
  probe   the backward pass of one 1x1 convolution with stride 2 (64 images of 28x28, 8 output channels) for each number of
          input channels, in both layouts, each in a subprocess with a time limit, at 1 and at 2 threads: the largest
          difference of the channels-last weight gradient from the contiguous one, relative to the gradient's largest value;
          or the crash or hang that ended it. This is the case oneDNN issue 6035 describes; `channels_last_hazards` refuses it.

    OMP_NUM_THREADS=1 python benchmarks/channels_last.py
    OMP_NUM_THREADS=1 python benchmarks/channels_last.py --models resnet8 resnet56 --rounds 5 --channels 2 8 16
"""
import argparse, json, os, signal, statistics, subprocess, sys
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn
from fastai.callback.progress import ProgressCallback # `Learner.no_bar`
from fastai.learner import Learner
from fastai.torch_core import set_seed

from ihkd.channels_last import CheckedChannelsLast, channels_last_hazards, ic_block
from ihkd.core import atomic_save, versions, write_text
from ihkd.data import fashion_mnist
from ihkd.models import get_model
from ihkd.recipe import reference_opt
import capacity_gap # registers the narrow students, resnet8_half and resnet8_quarter
from timers import TrainTimer

LAYOUTS = ('contiguous', 'channels_last')

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=['resnet8_quarter', 'resnet8_half', 'resnet8', 'resnet20', 'resnet56'], help='zoo names')
    p.add_argument('--n_train', type=int, default=1400, help='embedded Fashion-MNIST images (train + valid)')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--channels', nargs='+', type=int, default=[1, 2, 4, 7, 8, 12, 15, 16], help='input channels of the probed convolution')
    p.add_argument('--timeout', type=int, default=60, help='seconds before a probe counts as hung')
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    p.add_argument('--probe_one', nargs=2, type=int, metavar=('CHANNELS', 'THREADS'), help=argparse.SUPPRESS) # one probe, in its own process
    return p.parse_args(argv)

def train_speed(dls, name, layout):
    "Images per second of one training epoch of a fresh `name` in memory format `layout`."
    learn = Learner(dls, get_model(name, 10, 1), opt_func=reference_opt(), cbs=[TrainTimer(), *([CheckedChannelsLast()] if layout=='channels_last' else [])])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    return len(dls.train)*dls.train.bs/learn.train_timer.times[0]

def speeds(a):
    set_seed(0)
    dls = fashion_mnist('embedded', bs=a.bs, n_train=a.n_train, device='cpu')
    refused = {m: h for m in a.models if (h := channels_last_hazards(get_model(m, 10, 1)))}
    speed = {m: {l: [] for l in LAYOUTS} for m in a.models if m not in refused}
    for r in range(a.rounds + 1): # round 0 warms up and is dropped
        for m in speed:
            for l in LAYOUTS:
                s = train_speed(dls, m, l)
                if r: speed[m][l].append(s)
                print(f"round {r}{' (warm-up)' if not r else ''}: {m} {l}: {s:.0f} images/s", flush=True)
    return {'images_per_epoch': len(dls.train)*a.bs, 'images_per_s': speed, 'refused': refused}

def probe_one(channels, threads):
    "Print the weight gradient's largest difference between layouts, relative to its largest value, for one 1x1 stride-2 convolution."
    torch.set_num_threads(threads); torch.manual_seed(0)
    conv, x = nn.Conv2d(channels, 8, 1, stride=2, bias=False), torch.randn(64, channels, 28, 28)
    g = torch.randn(64, 8, 14, 14)
    def grad(fmt):
        c = nn.Conv2d(channels, 8, 1, stride=2, bias=False).to(memory_format=fmt); c.load_state_dict(conv.state_dict())
        c(x.clone().contiguous(memory_format=fmt)).backward(g.contiguous(memory_format=fmt))
        return c.weight.grad
    plain, last = grad(torch.contiguous_format), grad(torch.channels_last)
    print(((plain-last).abs().max()/plain.abs().max()).item())

def probe(a):
    "Each probe in a subprocess: its relative error, or how it ended."
    res = {}
    for t in (1, 2):
        for c in a.channels:
            cmd = [sys.executable, __file__, '--probe_one', str(c), str(t)]
            try: p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
            except subprocess.TimeoutExpired: out = f'hung (killed after {a.timeout} s)'
            else: out = float(p.stdout.split()[-1]) if p.returncode==0 else f'crashed ({signal.Signals(-p.returncode).name if p.returncode<0 else f"exit {p.returncode}"})'
            res[f'{c}/{t}'] = out
            print(f"probe: {c} input channels, {t} thread(s): {out}", flush=True)
    return res

def main(argv=None):
    a = parse(argv)
    if a.probe_one: return probe_one(*a.probe_one)
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 1)))
    res = {'command': f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python benchmarks/channels_last.py {' '.join(sys.argv[1:] if argv is None else argv)}".strip(),
           'date': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'versions': versions(), 'cores': os.cpu_count(),
           'threads': torch.get_num_threads(), 'ic_block': ic_block(), 'args': vars(a), **speeds(a), 'probe': probe(a)}
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    atomic_save(json.dumps(res, indent=1), out/'channels_last.json', save=write_text)
    atomic_save(table(res), out/'channels_last.md', save=write_text)
    print(table(res))

def _outcome(v): return (f"**{v:.1e}: wrong**" if v>1e-3 else f"{v:.1e}") if isinstance(v, float) else f"**{v}**"

def table(res) -> str:
    "The markdown report of a results dict: speeds per layout and their ratio, then the probes."
    v, a = res['versions'], res['args']
    rows = []
    for m, by in res['images_per_s'].items():
        c, n = (statistics.median(by[l]) for l in LAYOUTS)
        rows.append(f"| {m} | {c:.0f} | {n:.0f} | {n/c:.2f} |")
    rows += [f"| {m} | | refused: {', '.join(h)} | |" for m,h in res['refused'].items()]
    probes = [f"| {c} | {_outcome(res['probe'][f'{c}/1'])} | {_outcome(res['probe'][f'{c}/2'])} |" for c in a['channels']]
    return '\n'.join([
        "# Channels last against contiguous", "",
        f"CPU ({v['machine']}, instruction set {v['cpu_isa']}, so `ic_block()` = {res['ic_block']}; {res['cores']} cores), device {v['device']}; "
        f"torch {v['torch']}, fastai {v['fastai']}, ihkd {v['ihkd']}; {res['date']}.", "",
        f"## Training speed ({res['threads']} thread(s))", "",
        f"Embedded Fashion-MNIST, {res['images_per_epoch']} training images per epoch in batches of {a['bs']}; the training phase of one epoch, "
        f"medians of {a['rounds']} interleaved rounds after a warm-up.", "",
        "| model | contiguous (images/s) | channels last (images/s) | speed-up |", "|---|---:|---:|---:|", *rows, "",
        "## The weight gradient of a 1x1 convolution with stride 2, channels last against contiguous", "",
        "Largest difference relative to the gradient's largest value (float32 rounding is about 1e-6), or how the process ended.", "",
        "| input channels | 1 thread | 2 threads |", "|---:|---|---|", *probes, "",
        f"Command: `{res['command']}`", ""])

if __name__=='__main__': main()
