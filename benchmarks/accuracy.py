"""Capacity-gap accuracy benchmark: CE, KD, TAKD, DGKD and DIH side by side on the same data, epochs, optimizer and schedule.

Each (seed, student, method) is one `ihkd.run.Run` in `--work`/runs; the runs share the teacher, the assistant and the heads
through the work folder (`Run(work=...)`), so each piece is trained once per seed (or once in all, with `--teacher_seed`).
Every finished run is added at once (atomically) to `accuracy.json`, with the markdown table and the plot beside it, so an
interrupted benchmark keeps what it finished and resumes where it stopped.

Several processes may share one results file and one `--work` folder (same config, their own `--seeds`), one per core
or per GPU: they take turns on the file, and a piece that several need (the shared teacher, say) is trained by the
first to ask while the others wait for it.

    OMP_NUM_THREADS=1 python benchmarks/accuracy.py --n_train 5000 --epochs 3 --seeds 0 1 2      # Fashion-MNIST, CPU
    python benchmarks/accuracy.py --recipe cifar100 --data_path ~/.fastai/data/cifar100           # the paper's CIFAR-100 recipe
    python benchmarks/accuracy.py --report                                                         # redraw table and plot from the JSON
"""
from __future__ import annotations
import argparse, json, os, platform, shlex, sys, time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ihkd.core import atomic_save, config_diff, locked, versions, write_text
from ihkd.models import cifar_resnet, register_model
from ihkd.methods import METHODS
from ihkd.run import Run

# benchmark variants of a registered method: name -> (method, Run options, label); every registered method is a variant of itself
VARIANTS = {'dih': ('dih', dict(head='paper', mode='paper'), 'DIH (paper loss)'),
            'dih_norm': ('dih', dict(head='paper', mode='normalised'), 'DIH (normalised loss)'),
            'dih_pooled': ('dih', dict(head='pooled', mode='paper'), 'DIH (pooled heads)')}
def variants(): return {**{m: (m, {}, 'CE only' if m=='ce' else METHODS[m].label) for m in METHODS}, **VARIANTS}

def resnet8_half(n_out=100, in_channels=3):
    "A ResNet-8 at half width: a student still smaller than ResNet-8."
    return cifar_resnet(8, n_out, in_channels, widths=(8,16,32), stem=8)
register_model('resnet8_half', resnet8_half)

RECIPES = {'cifar100': dict(data='cifar100', teacher='resnet110', students=['resnet8'], assistant='resnet20', epochs=200,
                            n_train=None, seeds=[0, 1, 2], T=5., alpha=0.1, lr=0.1, bs=64)}
FMNIST_DEFAULTS = dict(data='fashion-mnist', teacher='resnet56', students=['resnet8', 'resnet8_half'], assistant='resnet20',
                       epochs=3, n_train=5000, seeds=[0, 1, 2], T=5., alpha=0.1, lr=0.1, bs=64)

def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a('--recipe', choices=list(RECIPES), help="start from a preset: 'cifar100' is the paper's (ResNet-110 -> ResNet-8, 200 epochs)")
    a('--data', help="fashion-mnist, embedded, cifar10, cifar100 or a folder (default: fashion-mnist)")
    a('--data_path', help="a local copy of CIFAR (train/, test/) for --data cifar10/cifar100, instead of downloading it")
    a('--teacher'); a('--assistant', help="assistant of TAKD and DGKD")
    a('--students', nargs='+', help="student models: zoo names, or resnet8_half")
    a('--methods', nargs='+', choices=list(variants()), default=list(variants()))
    a('--epochs', type=int, help="epochs of every student and the assistant")
    a('--teacher_epochs', type=int, help="default: --epochs"); a('--head_epochs', type=int, help="default: --epochs")
    a('--n_train', type=int, help="training images used (train + valid); 0 = all")
    a('--seeds', type=int, nargs='+'); a('--split_seed', type=int, default=42, help="seed of the train/valid split and subset")
    a('--teacher_seed', type=int, help="train one teacher, with this seed, and share it across the seeds (default: one teacher per seed)")
    a('--T', type=float); a('--alpha', type=float); a('--lr', type=float); a('--bs', type=int)
    a('--teacher_lr', type=float, help="learning rate of the teacher (default: --lr); a deep teacher trained for few epochs may need less")
    a('--mode', default='paper', choices=['paper', 'normalised'], help="loss mode of KD, TAKD, DGKD (default: %(default)s)")
    a('--drop', type=float, default=0.5, help="DGKD: chance that the teacher or the assistant sits out a batch")
    a('--cache', action='store_true', help="students replay their crops and read their teachers' logits from soft-label caches in --work, built once per seed")
    a('--out', default=str(Path(__file__).parent/'results'), help="folder of accuracy.json/.md/.png")
    a('--name', default='accuracy', help="file name stem of the results")
    a('--work', default='/tmp/ihkd-bench-accuracy', help="run folders and the teachers, assistants and heads they share, for resuming")
    a('--force', action='store_true', help="start over instead of resuming a results file of another config")
    a('--report', action='store_true', help="only redraw the table and the plot from the JSON")
    return p

def parse(argv=None):
    p = parser()
    recipe = p.parse_known_args(argv)[0].recipe
    p.set_defaults(**(RECIPES[recipe] if recipe else FMNIST_DEFAULTS))
    args = p.parse_args(argv)
    args.teacher_epochs = args.teacher_epochs or args.epochs
    args.teacher_lr = args.teacher_lr or args.lr
    args.head_epochs = args.head_epochs or args.epochs
    args.n_train = args.n_train or None
    return args

CONFIG_KEYS = ('data', 'data_path', 'teacher', 'assistant', 'students', 'methods', 'epochs', 'teacher_epochs', 'head_epochs',
               'n_train', 'split_seed', 'teacher_seed', 'T', 'alpha', 'lr', 'teacher_lr', 'bs', 'mode', 'drop', 'cache')

def machine() -> dict:
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), platform.processor()) \
          if Path('/proc/cpuinfo').exists() else platform.processor()
    return {'cpu': cpu, 'cores': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
            'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS'), 'platform': platform.platform(), **versions()}

# ---- results file ----

class Results:
    "The JSON of every run, kept on disk after each change; the table and plot are redrawn from it."
    def __init__(self, args, argv):
        self.out,self.name = Path(args.out),args.name
        self.out.mkdir(parents=True, exist_ok=True)
        self.file = self.out/f'{self.name}.json'
        self.lock = self.out/f'.{self.name}.lock'
        if args.report:
            if not self.file.exists(): sys.exit(f"No results at {self.file} to report.")
            return self.load()
        config = {k: getattr(args, k) for k in CONFIG_KEYS}
        cmd = 'OMP_NUM_THREADS=%s python benchmarks/accuracy.py %s' % (os.environ.get('OMP_NUM_THREADS', ''), shlex.join(argv))
        with locked(self.lock):
            if self.file.exists() and not args.force:
                self.load()
                if diff := config_diff(self.d['config'], config):
                    sys.exit(f"{self.file} holds a benchmark with another config (saved, asked): {diff}. Use --out/--name, or --force.")
                self.d['commands'].append(cmd)
            else:
                self.d = {'config': config, 'seeds': [], 'commands': [cmd], 'machine': machine(),
                          'started': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'teachers': [], 'assistants': [], 'heads': [], 'runs': []}
            self.d['seeds'] = sorted(set(self.d['seeds']) | set(args.seeds))
            self.d.pop('finished', None)
            self.save()

    def load(self): self.d = json.loads(self.file.read_text())
    def save(self): atomic_save(json.dumps(self.d, indent=1), self.file, save=write_text)

    def find(self, kind, **kw):
        self.load() # another process may have added it
        return next((r for r in self.d[kind] if all(r.get(k)==v for k,v in kw.items())), None)

    def add(self, kind, rec, **key):
        "Add `rec` under `kind`, unless a record with the values `key` is there already (a piece another run shares)."
        with locked(self.lock):
            if self.find(kind, **key): return
            self.d[kind].append({**key, **rec})
            self.d['updated'] = datetime.now(timezone.utc).isoformat(timespec='seconds')
            self.save()
            self.report(plot=False)

    def finish(self):
        "Mark the benchmark finished once every seed asked for, by any process, is complete; redraw table and plot."
        with locked(self.lock):
            self.load()
            if complete_seeds(self.d)==self.d['seeds']:
                self.d['finished'] = datetime.now(timezone.utc).isoformat(timespec='seconds')
                self.save()
            self.report()

    def report(self, plot=True):
        atomic_save(table(self.d), self.out/f'{self.name}.md', save=write_text)
        if plot: draw(self.d, self.out/f'{self.name}.png')

# ---- the runs ----

def student(seed, name, variant, c, res, work):
    "Train (or resume) one student with one method variant as a `Run`, sharing its pieces through `work`; add its records."
    if res.find('runs', seed=seed, student=name, method=variant): return
    method, options, _ = variants()[variant]
    config = dict(data=c['data'], data_path=c['data_path'], n_train=c['n_train'], teacher=c['teacher'], student=name,
                  assistant=c['assistant'], methods=[method], teacher_epochs=c['teacher_epochs'], head_epochs=c['head_epochs'],
                  student_epochs=c['epochs'], lr=c['lr'], teacher_lr=c['teacher_lr'], bs=c['bs'], seed=seed, split_seed=c['split_seed'],
                  teacher_seed=c['teacher_seed'], alpha=c['alpha'], T=c['T'], mode=c['mode'], drop=c['drop'],
                  train_teacher=True, head_lr=c['lr'], calibrate=False, # as the committed results were made: own teacher, heads at lr, no temperatures
                  cache=c['cache'])
    run = Run(work/'runs'/f'seed{seed}'/f'{name}-{variant}', work=work/'shared', quiet=True, **{**config, **options})
    t0 = time.time()
    steps = run.run()['steps']
    res.add('teachers', {**steps['teacher'], 'model': c['teacher']}, seed=run.config['teacher_seed'])
    if 'heads' in steps: res.add('heads', steps['heads'], seed=seed, head=run.config['head'])
    if 'assistant' in steps: res.add('assistants', {**steps['assistant'], 'model': c['assistant']}, seed=seed)
    rec = steps[f'student_{method}']
    res.add('runs', {**rec, 'student': name, 'method': variant, 'loss': method, 'head': options.get('head'), 'mode': run.config['mode'],
                     'model': name, 'wall_s': round(time.time()-t0, 1)}, seed=seed, student=name, method=variant)
    print(f"seed {seed} {name:>12} {variant:>10}: test acc {rec['test_acc']:.4f}  ({rec['seconds']} s)", flush=True)

def run(args, argv):
    res = Results(args, argv)
    if args.report:
        with locked(res.lock): return res.report() # every write holds the lock, so writers never share a temporary file
    c, work = res.d['config'], Path(args.work)
    for seed in args.seeds:
        for name in c['students']:
            for variant in c['methods']: student(seed, name, variant, c, res, work)
        with locked(res.lock): res.report()
    res.finish()
    print(f"\n{res.file}\n{res.out/(res.name+'.md')}\n{res.out/(res.name+'.png')}")

# ---- table and plot ----

def mean_std(v):
    t = torch.tensor(v, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(v)>1 else float('nan'))

def pct(v):
    m,s = mean_std(v)
    return f"{100*m:.2f} ± {100*s:.2f}" if s==s else f"{100*m:.2f}"

def label(m): return variants()[m][2] if m in variants() else m

def complete_seeds(d) -> list:
    "Seeds for which every student was trained with every method: the means compare methods on these only."
    c = d['config']
    return [s for s in d['seeds'] if all(any(r['seed']==s and r['student']==n and r['method']==m for r in d['runs'])
                                         for n in c['students'] for m in c['methods'])]

def table(d) -> str:
    c, lines = d['config'], []
    done = complete_seeds(d)
    partial = sorted({r['seed'] for r in d['runs']} - set(done))
    ms = d['machine']
    lines += [f"# Capacity-gap accuracy benchmark", "",
              f"Data: {c['data']}" + (f" ({c['n_train']:,} training images: train + valid)" if c['n_train'] else " (all training images)") +
              f", validation split from the training set (split seed {c['split_seed']}), full test set evaluated once per model.",
              f"Teacher {c['teacher']} ({c['teacher_epochs']} epochs at lr {c['teacher_lr']}" + (f", one teacher trained with seed {c['teacher_seed']} and shared by all seeds" if c['teacher_seed'] is not None else ", one per seed") + f"), heads {c['head_epochs']} epochs, assistant {c['assistant']} and every student "
              f"{c['epochs']} epochs; SGD momentum 0.9, wd 5e-4, lr {c['lr']} with steps x0.1 at 30/60/90% of training, batch {c['bs']}; "
              f"T={c['T']}, alpha={c['alpha']}, DGKD drop={c['drop']}. Seeds: {', '.join(map(str, d['seeds']))}.", "",
              f"Accuracy: test set, mean ± std over the seeds for which every method finished (seeds {', '.join(map(str, done)) or 'none'}; n of them); "
              "'per seed' lists every finished run" + (f", including seeds {', '.join(map(str, partial))} that did not finish every method (not in the mean)" if partial else "") +
              ". Time: mean wall time of one student's training (the teacher, assistant and heads are trained once per seed and shared).", ""]
    for name in c['students']:
        runs = [r for r in d['runs'] if r['student']==name]
        if not runs: continue
        lines += [f"## Student {name} ({runs[0]['params']:,} parameters)", "", "| method | test acc (%) | n | per seed | time (s) |", "|---|---:|---:|---|---:|"]
        for m in c['methods']:
            rs = [r for r in runs if r['method']==m]
            rd = [r for r in rs if r['seed'] in done] or rs
            if rs: lines.append(f"| {label(m)} | {pct([r['test_acc'] for r in rd])} | {len(rd)} | "
                                f"{', '.join('%.2f' % (100*r['test_acc']) for r in rs)} | {mean_std([r['seconds'] for r in rs])[0]:.0f} |")
        lines.append("")
    lines += ["## Teacher, assistant and heads", "", "| model | params | test acc (%) | n | time (s) |", "|---|---:|---:|---:|---:|"]
    for kind, what in (('teachers', 'teacher'), ('assistants', 'assistant (KD from the teacher)')):
        rs = d[kind]
        if rs: lines.append(f"| {what}: {rs[0]['model']} | {rs[0]['params']:,} | {pct([r['test_acc'] for r in rs])} | {len(rs)} | {mean_std([r['seconds'] for r in rs])[0]:.0f} |")
    for kind in ('paper', 'pooled'):
        rs = [r for r in d['heads'] if r['head']==kind]
        if not rs: continue
        for n in rs[0]['test_acc']:
            if n!='output': lines.append(f"| {kind} head on {n} | {rs[0]['params'][n]:,} | {pct([r['test_acc'][n] for r in rs])} | {len(rs)} | |")
        lines.append(f"| ({kind} heads: training of all heads) | {sum(rs[0]['params'].values()):,} | | {len(rs)} | {mean_std([r['seconds'] for r in rs])[0]:.0f} |")
    lines += ["", f"Machine: {ms['cpu']}, {ms['cores']} cores, torch threads {ms['torch_threads']} (OMP_NUM_THREADS={ms['OMP_NUM_THREADS']}); "
              f"ihkd {ms['ihkd']}, torch {ms['torch']}, fastai {ms['fastai']}, Python {ms['python']}, device {ms['device']}.",
              f"Started {d['started']}" + (f", finished {d['finished']}" if 'finished' in d else f", last update {d.get('updated', '-')} (not finished)") + ".",
              "", "Commands, in the order they started (one that appears again resumed an interrupted run):", "", *[f"    {cmd}" for cmd in d['commands']], ""]
    return '\n'.join(lines)

def draw(d, fn):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    c = d['config']
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={'width_ratios': [3, 2]})
    w, done = 0.8/max(1, len(c['students'])), complete_seeds(d)
    for j,name in enumerate(c['students']):
        xs, ms, ss = [], [], []
        for i,m in enumerate(c['methods']):
            v = [r['test_acc']*100 for r in d['runs'] if r['student']==name and r['method']==m and (r['seed'] in done or not done)]
            if v: mu,sd = mean_std(v); xs.append(i + (j-(len(c['students'])-1)/2)*w); ms.append(mu); ss.append(0 if sd!=sd else sd)
        if xs: ax.errorbar(xs, ms, yerr=ss, fmt='o', capsize=4, label=f"student {name}")
    ax.set_xticks(range(len(c['methods'])), [label(m).replace(' (', '\n(').replace(' loss)', ')') for m in c['methods']], fontsize=8)
    ax.set_ylabel('test accuracy (%)'); ax.set_title(f"Students, mean ± std over seeds (teacher {c['teacher']})"); ax.legend(fontsize=8)
    ax.grid(axis='y', alpha=0.3)
    for kind, mk in (('paper', 'o-'), ('pooled', 's--')):
        rs = [r for r in d['heads'] if r['head']==kind]
        if not rs: continue
        names = list(rs[0]['test_acc'])
        stats = [mean_std([r['test_acc'][n]*100 for r in rs]) for n in names]
        ax2.errorbar(range(len(names)), [m for m,_ in stats], yerr=[0 if s!=s else s for _,s in stats], fmt=mk, capsize=4,
                     label=f"{kind} heads ({sum(rs[0]['params'].values()):,} params)")
        ax2.set_xticks(range(len(names)), [n if n!='output' else 'teacher\noutput' for n in names])
    ax2.set_ylabel('test accuracy (%)'); ax2.set_title('Head-accuracy ladder of the teacher'); ax2.legend(fontsize=8); ax2.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save(fig, fn, save=lambda f, path: f.savefig(path, dpi=80, format='png'))
    plt.close(fig)

if __name__=='__main__':
    argv = sys.argv[1:]
    run(parse(argv), argv)
