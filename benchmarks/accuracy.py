"""Capacity-gap accuracy benchmark: CE, KD, TAKD, DGKD and DIH side by side on the same data, epochs, optimizer and schedule.

Per seed the teacher, the assistant (TAKD, DGKD) and the heads (paper and pooled) are trained once and shared by every
method; each student is then trained once per method. Every finished piece is written at once (atomically) to
`accuracy.json` with the markdown table and the plot beside it, so an interrupted run keeps what it finished and
resumes where it stopped (checkpoints in `--work`).

Several processes may share one results file and one `--work` folder (same config, their own `--seeds`), one per core
or per GPU: they take turns on the file, and a piece that several need (the shared teacher, say) is trained by the
first to ask while the others wait for it.

    OMP_NUM_THREADS=1 python benchmarks/accuracy.py --n_train 5000 --epochs 3 --seeds 0 1 2      # Fashion-MNIST, CPU
    python benchmarks/accuracy.py --recipe cifar100 --data_path ~/.fastai/data/cifar100           # the paper's CIFAR-100 recipe
    python benchmarks/accuracy.py --report                                                         # redraw table and plot from the JSON
"""
from __future__ import annotations
import argparse, fcntl, json, os, platform, shlex, sys, time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch
from fastai.torch_core import set_seed

from ihkd.callbacks import ModelCohort
from ihkd.data import cifar
from ihkd.heads import HeadedModel, save_heads, load_heads, _atomic_save
from ihkd.models import cifar_resnet
from ihkd.pipeline import get_data, make_model, train_teacher, train_heads, distill, save_checkpoint, load_checkpoint, versions, HEADS

# name -> (pipeline method, head kind, loss mode); the loss mode of the others is `--mode`
METHODS = {'ce': ('ce', None, None), 'kd': ('kd', None, None), 'takd': ('takd', None, None), 'dgkd': ('dgkd', None, None),
           'dih': ('dih', 'paper', 'paper'), 'dih_norm': ('dih', 'paper', 'normalised'), 'dih_pooled': ('dih', 'pooled', 'paper')}
LABELS = {'ce': 'CE only', 'kd': 'KD', 'takd': 'TAKD', 'dgkd': 'DGKD', 'dih': 'DIH (paper loss)',
          'dih_norm': 'DIH (normalised loss)', 'dih_pooled': 'DIH (pooled heads)'}
# models beyond the zoo: a ResNet-8 at half width, a student still smaller than ResNet-8
EXTRA_MODELS = {'resnet8_half': dict(depth=8, widths=(8,16,32), stem=8)}
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
    a('--students', nargs='+', help=f"student models: zoo names or {', '.join(EXTRA_MODELS)}")
    a('--methods', nargs='+', choices=list(METHODS), default=list(METHODS))
    a('--epochs', type=int, help="epochs of every student and the assistant")
    a('--teacher_epochs', type=int, help="default: --epochs"); a('--head_epochs', type=int, help="default: --epochs")
    a('--n_train', type=int, help="training images used (train + valid); 0 = all")
    a('--seeds', type=int, nargs='+'); a('--split_seed', type=int, default=42, help="seed of the train/valid split and subset")
    a('--teacher_seed', type=int, help="train one teacher, with this seed, and share it across the seeds (default: one teacher per seed)")
    a('--T', type=float); a('--alpha', type=float); a('--lr', type=float); a('--bs', type=int)
    a('--teacher_lr', type=float, help="learning rate of the teacher (default: --lr); a deep teacher trained for few epochs may need less")
    a('--mode', default='paper', choices=['paper', 'normalised'], help="loss mode of KD, TAKD, DGKD (default: %(default)s)")
    a('--drop', type=float, default=0.5, help="DGKD: chance that the teacher or the assistant sits out a batch")
    a('--out', default=str(Path(__file__).parent/'results'), help="folder of accuracy.json/.md/.png")
    a('--name', default='accuracy', help="file name stem of the results")
    a('--work', default='/tmp/ihkd-bench-accuracy', help="checkpoints of teachers, assistants and heads, for resuming")
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
               'n_train', 'split_seed', 'teacher_seed', 'T', 'alpha', 'lr', 'teacher_lr', 'bs', 'mode', 'drop')

def machine() -> dict:
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), platform.processor()) \
          if Path('/proc/cpuinfo').exists() else platform.processor()
    return {'cpu': cpu, 'cores': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
            'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS'), 'platform': platform.platform(), **versions()}

# ---- data and models ----

def data(c):
    set_seed(c['split_seed'])
    if c['data'] in ('cifar10', 'cifar100') and c['data_path']:
        return cifar(int(c['data'][5:]), path=c['data_path'], bs=c['bs'], seed=c['split_seed'], n_train=c['n_train'])
    return get_data(c['data'], c['bs'], c['split_seed'], c['n_train'])

def model(name, dls):
    if name not in EXTRA_MODELS: return make_model(name, dls)
    return cifar_resnet(n_out=dls.c, in_channels=dls.valid.one_batch()[0].shape[1], **EXTRA_MODELS[name])

# ---- results file ----

def write_text(text, path): Path(path).write_text(text)

@contextmanager
def locked(path):
    "Hold an exclusive lock on the file `path` while the block runs: processes sharing results or checkpoints take turns."
    with open(path, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try: yield
        finally: fcntl.flock(f, fcntl.LOCK_UN)

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
                if self.d['config']!=config:
                    diff = {k: (self.d['config'].get(k), v) for k,v in config.items() if self.d['config'].get(k)!=v}
                    sys.exit(f"{self.file} holds a benchmark with another config (saved, asked): {diff}. Use --out/--name, or --force.")
                self.d['commands'].append(cmd)
            else:
                self.d = {'config': config, 'seeds': [], 'commands': [cmd], 'machine': machine(),
                          'started': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'teachers': [], 'assistants': [], 'heads': [], 'runs': []}
            self.d['seeds'] = sorted(set(self.d['seeds']) | set(args.seeds))
            self.d.pop('finished', None)
            self.save()

    def load(self): self.d = json.loads(self.file.read_text())
    def save(self): _atomic_save(json.dumps(self.d, indent=1), self.file, save=write_text)

    def find(self, kind, **kw):
        self.load() # another process may have added it
        return next((r for r in self.d[kind] if all(r.get(k)==v for k,v in kw.items())), None)

    def add(self, kind, rec):
        with locked(self.lock):
            self.load()
            self.d[kind].append(rec)
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
        _atomic_save(table(self.d), self.out/f'{self.name}.md', save=write_text)
        if plot: draw(self.d, self.out/f'{self.name}.png')

# ---- the steps ----

def step(seed, c):
    "Seed everything and build the data afresh, so that a step gives the same result whatever ran before it."
    dls = data(c)
    set_seed(seed, reproducible=True)
    return dls

def piece(work, seed, name):
    "The checkpoint file of a shared piece, and a lock that makes a second process wait while the first trains it."
    d = work/f'seed{seed}'
    d.mkdir(parents=True, exist_ok=True)
    return d/f'{name}.pth', locked(d/f'.{name}.lock')

def teacher(seed, c, res, work):
    if c['teacher_seed'] is not None: seed = c['teacher_seed']
    f, lock = piece(work, seed, 'teacher')
    with lock:
        if res.find('teachers', seed=seed) and f.exists(): return load_checkpoint(model(c['teacher'], data(c)), f)
        dls = step(seed, c)
        learn, rec = train_teacher(model(c['teacher'], dls), dls, c['teacher_epochs'], c['teacher_lr'], work/f'seed{seed}', quiet=True)
        save_checkpoint(learn.model, f)
        res.add('teachers', {'seed': seed, **rec, 'model': c['teacher']})
        return learn.model

def assistant(seed, c, res, work):
    f, lock = piece(work, seed, 'assistant')
    with lock:
        if res.find('assistants', seed=seed) and f.exists(): return load_checkpoint(model(c['assistant'], data(c)), f)
        t = teacher(seed, c, res, work)
        dls = step(seed, c)
        learn, rec = distill(model(c['assistant'], dls), dls, 'kd', t, c['epochs'], c['lr'], c['alpha'], c['T'], c['mode'], work/f'seed{seed}', True)
        save_checkpoint(learn.model, f)
        res.add('assistants', {'seed': seed, **rec, 'model': c['assistant']})
        return learn.model

def heads(seed, kind, c, res, work):
    t = teacher(seed, c, res, work) # a fresh copy per head kind: the hooks of one HeadedModel never fire for another
    f, lock = piece(work, seed, f'heads_{kind}')
    with lock:
        if res.find('heads', seed=seed, head=kind) and f.exists():
            return load_heads(HeadedModel(t, head=HEADS[kind], x=data(c).valid.one_batch()[0][:2]), f)
        dls = step(seed, c)
        learn, rec = train_heads(t, dls, c['head_epochs'], c['lr'], kind, path=work/f'seed{seed}', quiet=True)
        save_heads(learn.model, f)
        res.add('heads', {'seed': seed, **rec})
        return learn.model

def student(seed, name, method, c, res, work):
    if res.find('runs', seed=seed, student=name, method=method): return
    how, head, mode = METHODS[method]
    t = heads(seed, head, c, res, work) if how=='dih' else teacher(seed, c, res, work) if how!='ce' else None
    a = [assistant(seed, c, res, work)] if how in ('takd', 'dgkd') else None
    dls = step(seed, c)
    t0 = time.time()
    learn, rec = distill(model(name, dls), dls, how, t, c['epochs'], c['lr'], c['alpha'], c['T'], mode or c['mode'],
                         work/f'seed{seed}', True, a, c['drop'])
    res.add('runs', {**rec, 'seed': seed, 'student': name, 'method': method, 'loss': how, 'head': head, 'mode': mode or c['mode'],
                     'model': name, 'wall_s': round(time.time()-t0, 1)})
    print(f"seed {seed} {name:>12} {method:>10}: test acc {rec['test_acc']:.4f}  ({rec['seconds']} s)", flush=True)

def run(args, argv):
    res = Results(args, argv)
    if args.report:
        with locked(res.lock): return res.report() # every write holds the lock, so writers never share a temporary file
    c, work = res.d['config'], Path(args.work)
    for seed in args.seeds:
        (work/f'seed{seed}').mkdir(parents=True, exist_ok=True)
        for name in c['students']:
            for method in c['methods']: student(seed, name, method, c, res, work)
        for kind in ('paper', 'pooled'): # the head ladder is reported even when no DIH method asked for these heads
            if any(METHODS[m][1]==kind for m in c['methods']): heads(seed, kind, c, res, work)
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
            if rs: lines.append(f"| {LABELS[m]} | {pct([r['test_acc'] for r in rd])} | {len(rd)} | "
                                f"{', '.join('%.2f' % (100*r['test_acc']) for r in rs)} | {mean_std([r['seconds'] for r in rs])[0]:.0f} |")
        lines.append("")
    lines += ["## Teacher, assistant and heads", "", "| model | params | test acc (%) | n | time (s) |", "|---|---:|---:|---:|---:|"]
    for kind, label in (('teachers', 'teacher'), ('assistants', 'assistant (KD from the teacher)')):
        rs = d[kind]
        if rs: lines.append(f"| {label}: {rs[0]['model']} | {rs[0]['params']:,} | {pct([r['test_acc'] for r in rs])} | {len(rs)} | {mean_std([r['seconds'] for r in rs])[0]:.0f} |")
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
    ax.set_xticks(range(len(c['methods'])), [LABELS[m].replace(' (', '\n(').replace(' loss)', ')') for m in c['methods']], fontsize=8)
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
    _atomic_save(fig, fn, save=lambda f, path: f.savefig(path, dpi=80, format='png'))
    plt.close(fig)

if __name__=='__main__':
    argv = sys.argv[1:]
    run(parse(argv), argv)
