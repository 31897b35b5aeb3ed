"""Benchmark v2 (issue 12, part 4): students across capacity gaps, taught by a shipped teacher on full Fashion-MNIST, from soft-label caches.

Each number of student epochs is a grid of its own, its results in `--out`/capacity_gap_e<epochs>.{json,md,png} and its
work in runs/capacity-gap-e<epochs> (`--work`).
Every (seed, student, variant) is one `ihkd.run.Run` with `cache=True` in `--work`/runs; teacher, heads, assistant and the
soft-label caches are shared through `--work`/shared, so each is made once per seed. Each finished run is added at once
to the results JSON and the table and plot are redrawn, so an interrupted grid keeps what it finished and resumes where it
stopped. Several processes (one per core) may work on one grid: each takes the next (student, variant, seed) that no other
is training (an advisory lock per cell, released when its process ends, however it ends), leaving for later a cell whose
teacher piece (heads, assistant, soft-label cache) another process is making.

The report opens with every method's verdicts against CE and against KD, a table per split. Then, per student, it gives
each variant's validation and test accuracy and its paired per-seed difference against CE and against KD with 95% t
intervals, and the epoch at which CE's validation accuracy peaked (the last epoch means the students may not have converged). The plot is the paper's claim: gain over CE and over KD against the
teacher/student parameter ratio, one line per method.

    OMP_NUM_THREADS=1 python benchmarks/capacity_gap.py --epochs 50 --amp bf16 &              # the grid: one process per core
    OMP_NUM_THREADS=1 python benchmarks/capacity_gap.py --epochs 50 --amp bf16 &
    python benchmarks/capacity_gap.py --data embedded --n_train 1000 --teacher resnet20 --students resnet8_quarter \\
        --variants ce kd dih --epochs 1 --seeds 0 1 --out /tmp/cg --work /tmp/cg-work         # a smoke test
    python benchmarks/capacity_gap.py --report --epochs 50                                     # redraw capacity_gap_e50.md and .png from its JSON

A seed's heads cache is most of its cells' cost. `--prepare` makes what the cells read (heads, assistant, soft-label
caches) and trains no student, so one process can build it on every core before the cells train one thread each:

    OMP_NUM_THREADS=2 python benchmarks/capacity_gap.py --epochs 50 --students resnet8_quarter --variants dih kd --seeds 1 --prepare
    OMP_NUM_THREADS=1 python benchmarks/capacity_gap.py --epochs 50 --students resnet8_quarter --variants dih kd --seeds 1 &   # twice

A grid is pinned to the weights of the teacher that shipped when it started (their sha256): a command refuses to add to it
once another teacher ships, and a work folder that holds another teacher is refused too. A new grid can take the old one's
CE cells, which read no teacher: `--merge old.json` brings only those over.

Another command with other students or variants, and the same grid otherwise (data, teacher, epochs, ...), extends the
grid in the same results file: cross-architecture pairs and the other methods, for instance

    OMP_NUM_THREADS=1 python benchmarks/capacity_gap.py --epochs 50 --amp bf16 --students mobilenetv2_x0_5 shufflenetv2_x1_0 \
        --variants ce kd dih dkd fitnets at crd mhkd
"""
from __future__ import annotations
import argparse, fcntl, json, math, os, shlex, statistics, sys, time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch
from ihkd.core import amp_native, atomic_save, config_diff, defaults, locked, versions, write_text
from ihkd.models import cifar_resnet, model_names, register_model
from ihkd.methods import get_method
from ihkd.pretrained import ships_teacher, teacher_card
from ihkd.run import Run

VARIANTS = { # name -> (method, Run options, label)
    'ce': ('ce', {}, 'CE'),
    'kd': ('kd', dict(calibrate=False), 'KD'),
    'takd': ('takd', {}, 'TAKD'),
    'dgkd': ('dgkd', {}, 'DGKD'),
    'dih': ('dih', dict(head='paper', mode='paper', calibrate=False), 'DIH (paper loss)'),
    'dih_norm': ('dih', dict(head='paper', mode='normalised', calibrate=False), 'DIH (normalised loss)'),
    'dih_pooled': ('dih', dict(head='pooled', head_lr=0.1, calibrate=False), 'DIH (pooled heads, lr 0.1)'),
    'dih_cal': ('dih', dict(head='paper', mode='paper', calibrate=True), 'DIH (calibrated)'),
    'dkd': ('dkd', dict(calibrate=False), 'DKD'),
    'dih_dkd': ('dih_dkd', dict(head='paper', calibrate=False), 'DIH (DKD terms)'),
    'fitnets': ('fitnets', {}, 'FitNets'),
    'at': ('at', {}, 'AT'),
    'crd': ('crd', {}, 'CRD'),
    'mhkd': ('mhkd', dict(head='paper', calibrate=False), 'MHKD'),
}
# the order cells are trained in: the paper-heads DIH variants first, since their heads' cache then serves KD, TAKD and DGKD too;
# CE, which needs nothing shared, before the methods that wait for an assistant
TRAIN_ORDER = ('dih', 'dih_norm', 'dih_cal', 'kd', 'ce', 'takd', 'dgkd', 'dih_pooled', 'dkd', 'dih_dkd', 'fitnets', 'at', 'crd', 'mhkd')
T95 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}

def _narrow(f): # ResNet-8 at a fraction of its width: the far end of the capacity-gap ladder
    def make(n_out=100, in_channels=3): return cifar_resnet(8, n_out, in_channels, widths=tuple(int(w*f) for w in (16, 32, 64)), stem=int(16*f))
    return make
for name,f in (('resnet8_half', 0.5), ('resnet8_quarter', 0.25)):
    if name not in model_names(): register_model(name, _narrow(f))

CONFIG = ('data', 'n_train', 'teacher', 'teacher_sha256', 'assistant', 'students', 'variants', 'epochs', 'head_epochs', 'head_lr', 'split_seed', 'bs', 'lr', 'T', 'alpha', 'amp')
GRID = tuple(k for k in CONFIG if k not in ('students', 'variants')) # what makes two commands one grid: other students and variants extend it

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a('--data', default='fashion-mnist'); a('--n_train', type=int, help="training images used (train + valid); default: all")
    a('--teacher', default='resnet56', help="a teacher that ships for the data (see ihkd.pretrained)")
    a('--assistant', default='resnet20', help="assistant of TAKD and DGKD")
    a('--students', nargs='+', default=['resnet20', 'resnet8', 'resnet8_half', 'resnet8_quarter'], help="zoo names; other architectures (mobilenetv2_x0_5, shufflenetv1, shufflenetv2_x1_0) make cross-architecture pairs")
    a('--variants', nargs='+', default=list(VARIANTS)[:8], choices=list(VARIANTS), help="default: the issue-12 grid (CE, KD, TAKD, DGKD and DIH's four forms)")
    a('--epochs', type=int, required=True, help="epochs of every student and the assistant: state how they were chosen")
    a('--head_epochs', type=int, default=3); a('--head_lr', type=float, default=defaults.head_lr, help="of the paper heads; a variant with other heads names their lr")
    a('--split_seed', type=int, default=42, help="must be the shipped teacher's")
    a('--bs', type=int, default=64); a('--lr', type=float, default=0.1); a('--T', type=float, default=5.); a('--alpha', type=float, default=0.1)
    a('--amp', choices=['bf16', 'fp16'], help="mixed precision of every step (see ihkd.run.Run); default: float32")
    a('--channels_last', action='store_true', help="train every step in the channels-last memory format (see ihkd.channels_last): faster on many CPUs, the same training rounded differently; "
      "each cell's record says which it used, and the report names the students whose cells used it")
    a('--seeds', type=int, nargs='+', default=[0, 1, 2])
    a('--out', default=str(Path(__file__).parent/'results')); a('--name', help="the results files' stem (default: capacity_gap_e<epochs>, one grid per number of epochs)")
    a('--work', help="run folders and the shared teacher, heads, assistants and caches (default: runs/capacity-gap-e<epochs>)")
    a('--report', action='store_true', help="only redraw the table and the plot from the JSON")
    a('--merge', nargs='+', metavar='JSON', help="add the runs of these results files (the same grid, on other machines or for a subset of its students and variants)")
    a('--prepare', action='store_true', help="make the heads, assistants and soft-label caches the cells read, and train no student")
    if {'--report', '--merge'} & set(argv if argv is not None else sys.argv[1:]):
        for act in p._actions:
            if act.dest=='epochs': act.required = False
    args = p.parse_args(argv)
    if args.prepare and (args.report or args.merge): p.error("--prepare makes pieces for cells to train, and --report and --merge train nothing: give --prepare alone")
    if args.name is None:
        if args.epochs is None: p.error("name the grid whose results to read: --epochs E (its file is capacity_gap_eE.json) or --name")
        args.name = f'capacity_gap_e{args.epochs}'
    args.work = args.work or f'runs/capacity-gap-e{args.epochs}'
    args.teacher_sha256 = teacher_card(args.data, args.teacher)['sha256'] if ships_teacher(args.data, args.teacher) else None # the weights every cell distils from
    return args

class Results:
    "The JSON of every finished run, rewritten atomically under a lock after each one."
    def __init__(self, args, argv):
        out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
        self.file,self.lock,self.stem = out/f'{args.name}.json',out/f'.{args.name}.lock',out/args.name
        if args.report or args.merge: self.d = json.loads(self.file.read_text()); return
        config = {k: getattr(args, k) for k in CONFIG}
        cmd = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python benchmarks/capacity_gap.py {shlex.join(argv)}"
        with locked(self.lock):
            if self.file.exists():
                self.d = json.loads(self.file.read_text())
                saved = self.d['config']
                if saved.get('teacher_sha256')!=config['teacher_sha256']: sys.exit(
                    f"{self.file} is a grid distilled from the {config['teacher']} with sha256 {_sha(saved.get('teacher_sha256'))}, and the one that ships now has "
                    f"{_sha(config['teacher_sha256'])}: cells from two teachers would not compare. Start a new grid (--name and --work); --merge carries its CE cells over.")
                if diff := config_diff({k: saved[k] for k in GRID}, {k: config[k] for k in GRID}): sys.exit(f"{self.file} holds another grid (saved, asked): {diff}. Use --out/--name.")
                for k in ('students', 'variants'): saved[k] = list(dict.fromkeys(saved[k] + config[k])) # more students or variants extend the grid
                if cmd not in self.d['commands']: self.d['commands'].append(cmd) # a restart resumes the same command
            else: self.d = {'config': config, 'commands': [cmd], 'machine': _machine(), 'runs': [], 'teacher': None,
                            'started': datetime.now(timezone.utc).isoformat(timespec='seconds')}
            self.save()

    def save(self): atomic_save(json.dumps(self.d, indent=1), self.file, save=write_text)
    def done(self, **key):
        with locked(self.lock): self.d = json.loads(self.file.read_text())
        return any(all(r[k]==v for k,v in key.items()) for r in self.d['runs'])

    def merge(self, fn):
        "Add the runs of the results file `fn` that this one lacks, each tagged with the machine it ran on, and its commands; of a grid with another teacher, only the cells that read none."
        o = json.loads(Path(fn).read_text())
        here, there = ({k: c.get(k) for k in GRID} for c in (self.d['config'], o['config']))
        other_teacher = here['teacher_sha256']!=there['teacher_sha256']
        if other_teacher: there['teacher_sha256'] = here['teacher_sha256'] # the rest of the grid must still agree
        if diff := config_diff(here, there): sys.exit(f"{fn} holds another grid (here, there): {diff}")
        with locked(self.lock):
            self.d = json.loads(self.file.read_text())
            key = lambda r: (r['seed'], r['student'], r['variant'])
            have = {key(r) for r in self.d['runs']}
            runs = [r for r in o['runs'] if not (other_teacher and reads_teacher(r['variant']))]
            if other_teacher: print(f"{fn} was distilled from another {o['config']['teacher']} (sha256 {_sha(o['config'].get('teacher_sha256'))}): "
                                    f"of its {len(o['runs'])} runs, only the {len(runs)} that read no teacher come over")
            new = [{**r, 'machine': o['machine']} for r in runs if key(r) not in have]
            self.d['runs'] += new
            for k,f in (('students', 'student'), ('variants', 'variant')): # a merged cell is part of the grid: its report shows it
                self.d['config'][k] = list(dict.fromkeys(self.d['config'][k] + [r[f] for r in new]))
            if other_teacher: self.d['commands'].append(f"# {len(new)} cells that read no teacher, merged from {fn}, a grid of another teacher: the commands that trained them are listed there")
            else:
                self.d['teacher'] = self.d['teacher'] or o['teacher']
                self.d['commands'] += [c for c in dict.fromkeys(f"{c}    # on {o['machine']['device']}" for c in o['commands']) if c not in self.d['commands']]
            self.save()
        print(f"{fn}: {len(new)} runs added, {len(runs)-len(new)} already here")

    def add(self, rec, teacher):
        with locked(self.lock):
            self.d = json.loads(self.file.read_text())
            self.d['runs'].append(rec); self.d['teacher'] = teacher
            self.d['updated'] = datetime.now(timezone.utc).isoformat(timespec='seconds')
            self.save()
            atomic_save(report(self.d), self.stem.with_suffix('.md'), save=write_text)
            draw(self.d, self.stem.with_suffix('.png'))

def _sha(h): return f"{h[:12]}…" if h else 'unrecorded'

def reads_teacher(variant) -> bool: return bool(get_method(VARIANTS[variant][0]).needs) # all but CE: an assistant was taught by the teacher too

def _machine():
    return {'cores': os.cpu_count(), 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS'), **versions()} # versions() names the cpu

def check_native(amp):
    "Refuse a grid in mixed precision `amp` on a device that only emulates it: each of its cells would run many times slower than in float32."
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    if not amp_native(amp, dev): sys.exit(
        f"--amp {amp}: this {dev} only emulates {amp}" + (f" (instruction set {torch.backends.cpu.get_cpu_capability()})" if dev=='cpu' else '') +
        ", which makes every step many times slower than float32 (benchmarks/amp_speed.py measures it). Run this grid where "
        f"{amp} is native ({'a CPU with AVX-512 BF16 or AMX, or a GPU' if amp=='bf16' else 'a GPU: float16 is slow on every CPU'}). A float32 grid is another grid: leave out --amp and give it its own --name.")

def make_run(args, res, seed, student, variant) -> Run:
    "The cached `Run` of one cell, sharing its pieces through the work folder."
    method, options, _ = VARIANTS[variant]
    c = res.d['config']
    run = Run(Path(args.work)/'runs'/f's{seed}'/f'{student}-{variant}', data=c['data'], n_train=c['n_train'], teacher=c['teacher'],
              student=student, assistant=c['assistant'], methods=[method], head_epochs=c['head_epochs'], student_epochs=c['epochs'],
              lr=c['lr'], bs=c['bs'], seed=seed, split_seed=c['split_seed'], T=c['T'], alpha=c['alpha'], cache=True, amp=c['amp'],
              channels_last=args.channels_last, work=Path(args.work)/'shared', quiet=True, **{'head_lr': c['head_lr'], **options})
    if not run.shipped: sys.exit(f"No trained {c['teacher']} ships for {c['data']}: this benchmark distils from shipped teachers (see ihkd.pretrained).")
    sha, where = teacher_in(run)
    if sha!=c['teacher_sha256']: sys.exit(
        f"{where} holds the {c['teacher']} with sha256 {_sha(sha)}, and this grid distils from {_sha(c['teacher_sha256'])}: "
        "the shipped teacher changed since that folder was made. Give this grid a --work of its own.")
    return run

def teacher_in(run) -> tuple:
    "(sha256, where) of the shipped teacher `run` will read: the one its own record or the work folder holds already, else the one that ships now."
    if 'teacher' in (steps := run.record['steps']): return steps['teacher'].get('shipped_sha256'), run.out/'record.json'
    if (f := run._shared('teacher').with_suffix('.json')).exists(): return json.loads(f.read_text()).get('shipped_sha256'), f
    return teacher_card(run.config['data'], run.config['teacher'])['sha256'], 'the package'

NEEDS = {'ce': (), 'kd': ('cache_heads', 'cache_teacher'), 'dih': ('heads', 'cache_heads'), # the shared pieces a method's run may make or wait for
         'takd': ('assistant', 'cache_heads', 'cache_teacher', 'cache_assistant'), 'dgkd': ('assistant', 'cache_heads', 'cache_teacher', 'cache_assistant'),
         'dkd': ('cache_heads', 'cache_teacher'), 'dih_dkd': ('heads', 'cache_heads'), 'fitnets': (), 'at': (), 'crd': (), 'mhkd': ('heads',)} # feature methods run their teacher

def busy(run, method) -> bool:
    "Whether another process is making a shared piece that `run` needs (its lock in the work folder is held): starting it now would only wait."
    for step in NEEDS[method] + (('assistant',) if run._is_assistant(method) else ()): # a KD student of the assistant's model is the assistant
        with claimed(run.work/f'.{step}-{run.key(step)}.lock') as free:
            if not free: return True
    return False

def train(res, run, seed, student, variant):
    "Train the cell's `run` and add its student to the results."
    method = VARIANTS[variant][0]
    t0, steps = time.time(), run.run()['steps']
    r, v = steps[f'student_{method}'], versions()
    res.add({'seed': seed, 'student': student, 'variant': variant, 'params': r['params'], 'valid_acc': r['valid_acc'], 'test_acc': r['test_acc'],
             'seconds': r['seconds'], 'wall_s': round(time.time()-t0, 1), 'valid_history': r['history'].get('accuracy'), 'device': v['device'],
             **({k: v[k] for k in ('cpu', 'cpu_isa')} if v['device']=='cpu' else {}), 'threads': torch.get_num_threads(), **({'channels_last': True} if r.get('channels_last') else {}),
             **({'same_as': r['same_as']} if 'same_as' in r else {}), # ResNet-20's KD student is the assistant (see Run.student)
             **({'assistant': {k: steps['assistant'][k] for k in ('model', 'valid_acc', 'test_acc')}} if 'assistant' in steps else {}),
             **({'heads': _heads_record(steps['heads'])} if 'heads' in steps else {})},
            {k: steps['teacher'][k] for k in ('model', 'params', 'valid_acc', 'test_acc', 'shipped', 'shipped_sha256')})
    print(f"seed {seed} {student:>15} {variant:>10}: valid {r['valid_acc']:.4f} test {r['test_acc']:.4f} ({r['seconds']} s)", flush=True)

def _heads_record(step) -> dict:
    "Which heads taught a cell: their file's sha256 and each member's validation accuracy (rebuilt elsewhere, a seed's heads round differently)."
    return {'sha256': step['sha256'], 'valid_acc': {m['name']: m['accuracy'] for m in step['members']}}

def attempt(args, res, student, variant, seed, wait:bool) -> bool:
    "Train a cell unless it is done or another process trains it; without `wait`, leave it (False) while a piece it needs is made elsewhere."
    with claimed(Path(args.work)/'claims'/f'{student}-{variant}-s{seed}.lock') as mine:
        if not mine or res.done(seed=seed, student=student, variant=variant): return True
        run = make_run(args, res, seed, student, variant)
        if not wait and busy(run, VARIANTS[variant][0]): return False
        train(res, run, seed, student, variant)
        return True

def prepare(args, res, student, variant, seed):
    "Make the pieces the cell's student reads, shared with the other cells of its seed, unless the cell is done: heads, assistant, soft-label caches."
    if res.done(seed=seed, student=student, variant=variant): return
    run, m = make_run(args, res, seed, student, variant), get_method(VARIANTS[variant][0])
    if 'heads' in m.needs: run.heads() # in the order `Run.student` makes them
    if 'assistant' in m.needs: run.assistant()
    run._caches(m) # the caches `Run.student` will open: built here, once per seed and teacher

# ---- the report ----

def paired(d, student, variant, base, split):
    "Per-seed differences `variant - base` on `split`, in points, over the seeds where both finished."
    acc = {(r['variant'], r['seed']): 100*r[split] for r in d['runs'] if r['student']==student}
    return [acc[variant, s]-acc[base, s] for (v,s) in acc if v==variant and (base, s) in acc]

def mean_ci(v):
    "Mean and half-width of the 95% t interval (nan with fewer than two values)."
    if not v: return float('nan'), float('nan')
    m = statistics.mean(v)
    return m, (T95.get(len(v), 1.96)*statistics.stdev(v)/math.sqrt(len(v)) if len(v)>1 else float('nan'))

def verdict(d, student, variant, base, split='test_acc') -> str|None:
    "'win', 'tie' or 'loss' of `variant` against `base` on `split` ('test_acc' or 'valid_acc'): its 95% interval wholly above 0, around 0, or below; None under two seeds."
    m, ci = mean_ci(paired(d, student, variant, base, split))
    if ci!=ci: return None
    return 'win' if m-ci>0 else 'loss' if m+ci<0 else 'tie'

def _verdicts(d, student, base, split='test_acc') -> str:
    "The variants that win, tie and lose against `base`; a win or loss from two seeds is marked provisional, as one degree of freedom lets two differences that agree by chance give a narrow interval."
    by = {}
    for v in d['config']['variants']:
        if v!=base and (w := verdict(d, student, v, base, split)):
            few = w!='tie' and len(paired(d, student, v, base, split))<3
            by.setdefault(w, []).append(VARIANTS[v][2] + (' (two seeds: provisional)' if few else ''))
    return '; '.join(f"{plural}: {', '.join(by[w])}" for w,plural in (('win', 'wins'), ('tie', 'ties'), ('loss', 'losses')) if w in by) or 'none yet (under two paired seeds)'

def _word(d, student, variant, base, split) -> str:
    "The verdict of `variant` against `base` as a table shows it: with its paired seeds in brackets where they are fewer than three, '·' under two, '—' against itself."
    if variant==base: return '—'
    n = len(paired(d, student, variant, base, split))
    return '·' if n<2 else verdict(d, student, variant, base, split) + (f" ({n})" if n<3 else '')

def verdict_table(d, split='test_acc') -> str:
    "A markdown table of every variant's verdicts against CE and against KD on `split`, a row per student with its teacher/student ratio."
    c, t = d['config'], teacher_of(d)
    params = {r['student']: r['params'] for r in d['runs']}
    vs = sorted((v for v in c['variants'] if v!='ce'), key=list(VARIANTS).index) # KD, the assistant methods, then DIH's forms, in every grid
    rows = [f"| {s} ({t['params']/params[s]:.1f}) | " + ' | '.join(f"{_word(d, s, v, 'ce', split)} / {_word(d, s, v, 'kd', split)}" for v in vs) + " |"
            for s in c['students'] if s in params]
    return '\n'.join([f"| student (ratio) | {' | '.join(VARIANTS[v][2] for v in vs)} |", '|---|' + '---|'*len(vs), *rows])

def verdict_tables(d) -> str:
    "`verdict_table` on test accuracy, then on validation accuracy, each under its name."
    return '\n\n'.join(f"On {name} accuracy:\n\n{verdict_table(d, split)}" for split, name in (('test_acc', 'test'), ('valid_acc', 'validation')))

def _device(d, r) -> str:
    "Where run `r` trained: its device, a CPU with its model and instruction set (each CPU rounds its own way, at its own speed); runs that predate a field: their machine's."
    m = r.get('machine', d['machine'])
    dev, isa = r.get('device') or m['device'], r.get('cpu_isa') or m.get('cpu_isa')
    model = r.get('cpu') or (m.get('cpu') if m.get('cpu')!=m.get('machine') else None) # older records hold the architecture there, not the model
    return f"cpu ({', '.join(filter(None, (model, isa)))})" if dev=='cpu' and (model or isa) else dev

def _machine_line(m): return f"{m['cpu']}" + (f" ({m['cpu_isa']})" if m.get('cpu_isa') else '') + f", {m['cores']} cores, OMP_NUM_THREADS={m['OMP_NUM_THREADS']}, device {m['device']}; ihkd {m['ihkd']}, torch {m['torch']}, fastai {m['fastai']}"

def _heads_lines(d) -> list:
    "The heads that taught each seed's cells, with the cells of each set where a seed had more than one, and how many cells predate the record."
    sets = {} # seed -> sha256 -> (record, cells)
    for r in d['runs']:
        if 'heads' in r: sets.setdefault(r['seed'], {}).setdefault(r['heads']['sha256'], (r['heads'], []))[1].append(f"{r['student']} {r['variant']}")
    def one(h, cells, several): return (', '.join(f"{n} {100*a:.2f}%" for n,a in h['valid_acc'].items()) + f" ({h['sha256'][:12]}"
                                        + (f": {', '.join(cells)}" if several else '') + ")")
    lines = [f"The heads (validation accuracy of each member; sha256 of their file), by seed: " + '; '.join(
             f"{s}: " + ' and '.join(one(h, cells, len(by)>1) for h,cells in by.values()) for s,by in sorted(sets.items())) + ".", ""] if sets else []
    if old := sum('heads' not in r and 'heads' in get_method(VARIANTS[r['variant']][0]).needs for r in d['runs']):
        lines += [f"{old} earlier cells that read heads do not record which.", ""]
    return lines

def _fmt(m, ci): return '' if m!=m else f"{m:+.2f}" + (f" ± {ci:.2f}" if ci==ci else '')

def teacher_of(d) -> dict:
    "The grid's teacher as its cells measured it; before any cell has read it (a new grid with only merged CE cells), its model and size from its card."
    c = d['config']
    return d['teacher'] or {'model': c['teacher'], 'params': teacher_card(c['data'], c['teacher'])['params']}

def report(d) -> str:
    c, t = d['config'], teacher_of(d)
    acc = f", valid {100*t['valid_acc']:.2f}%, test {100*t['test_acc']:.2f}%" if d['teacher'] else "; no cell has read it yet"
    lines = ["# Capacity-gap benchmark (v2)", "",
             f"Data: {c['data']}" + (f", {c['n_train']:,} training images (train + valid)" if c['n_train'] else ", the whole training split") +
             f" (validation split of seed {c['split_seed']}, the teacher's); test set evaluated once per model. Teacher: the shipped {t['model']} "
             f"({t['params']:,} parameters{acc}, sha256 {_sha(c.get('teacher_sha256'))}). Heads {c['head_epochs']} epochs at lr {c['head_lr']:g} (paper heads; a variant with other "
             f"heads names their lr); assistant {c['assistant']} and every student "
             f"{c['epochs']} epochs, SGD recipe at lr {c['lr']}, batch {c['bs']}, T={c['T']:g}, alpha={c['alpha']:g}"
             + (f", mixed precision {c['amp']} for every step and cache" if c['amp'] else '') + "; every student read its teachers "
             "from soft-label caches (replayed crops). Differences are paired by seed, in points, with 95% t intervals.", ""]
    if assistants := {r['seed']: r['assistant'] for r in d['runs'] if 'assistant' in r}: # the same assistant teaches every student of a seed
        lines += [f"The assistants (KD from the teacher), by seed: " + '; '.join(f"{s}: {a['model']}, valid {100*a['valid_acc']:.2f}%, test "
                  f"{100*a['test_acc']:.2f}%" for s,a in sorted(assistants.items())) + ".", ""]
    if set(c['variants'])-{'ce'}: # a grid of CE alone compares nothing
        lines += ["## Verdicts", "", "Each method against CE / against KD: win where the 95% interval of its paired difference is above 0, loss where it is below, "
                  "tie where it holds 0; in brackets the paired seeds where they are fewer than three (two make a verdict provisional), · under two.", ""]
        lines += [verdict_tables(d), ""]
    lines += _heads_lines(d)
    for s in c['students']:
        rs = [r for r in d['runs'] if r['student']==s]
        if not rs: continue
        ce = [r for r in rs if r['variant']=='ce']
        peak = [h.index(max(h)) for h in (r['valid_history'] for r in ce) if h]
        lines += [f"## {s} ({rs[0]['params']:,} parameters, teacher/student ratio {t['params']/rs[0]['params']:.1f})", "",
                  *([f"CE's validation accuracy peaked at epoch {', '.join(map(str, peak))} of 0..{c['epochs']-1} (one per seed).", ""] if peak else []),
                  "| variant | n | valid (%) | test (%, ± sd) | test - CE | test - KD | valid - CE | valid - KD |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for v in c['variants']:
            vr = [r for r in rs if r['variant']==v]
            if not vr: continue
            te = [100*r['test_acc'] for r in vr]
            lines.append(f"| {VARIANTS[v][2]} | {len(vr)} | {statistics.mean(100*r['valid_acc'] for r in vr):.2f} | {statistics.mean(te):.2f}"
                         + (f" ± {statistics.stdev(te):.2f}" if len(te)>1 else '') + " | "
                         + ' | '.join(_fmt(*mean_ci(paired(d, s, v, b, split))) if v!=b else '' for split in ('test_acc', 'valid_acc') for b in ('ce', 'kd')) + " |")
        lines += ["", f"On test accuracy (95% interval above 0, around it, or below), against CE: {_verdicts(d, s, 'ce')}. Against KD: {_verdicts(d, s, 'kd')}.", "",
                  f"On validation accuracy, against CE: {_verdicts(d, s, 'ce', 'valid_acc')}. Against KD: {_verdicts(d, s, 'kd', 'valid_acc')}.", ""]
        if any('provisional' in l for l in lines[-4:]): # say once per student why two seeds do not settle a verdict
            lines += [f"A win or loss from two seeds is provisional: with one degree of freedom its 95% interval reaches {T95[2]:g} standard errors either side of the mean, "
                      "so it is narrow only where the two differences happen to agree; a third seed may widen it.", ""]
        if last := [r for r in rs if r.get('channels_last')]: # the same training in another memory format, rounded differently: say which cells
            lines += ["Trained in the channels-last memory format: " + ('every cell' if len(last)==len(rs) else ', '.join(f"{r['variant']} s{r['seed']}" for r in last)) + ".", ""]
        if len(devs := {_device(d, r) for r in rs})>1: # say which cells ran where: their differences mix machines
            lines += ["Trained on: " + '; '.join(f"{dev}: " + ', '.join(f"{r['variant']} s{r['seed']}" for r in rs if _device(d, r)==dev) for dev in sorted(devs)) + ".", ""]
        elif devs!={_device(d, {})}: # a whole student from another machine
            lines += [f"Trained on: {devs.pop()}, every cell" + (" (merged)" if all('machine' in r for r in rs) else '') + ".", ""]
    others = {json.dumps(r['machine'], sort_keys=True) for r in d['runs'] if 'machine' in r} # merged cells keep the machine their grid started on
    where = Counter(_device(d, r) for r in d['runs'])
    moved = set(where) - {_device(d, {})} # cells that trained elsewhere: the grid's first machine alone would misname them
    lines += [f"Machine{' where the grid started' if moved else ''}: {_machine_line(d['machine'])}."] + [
              f"Merged from a grid that started on: {_machine_line(json.loads(m))}." for m in sorted(others)] + (
              [f"Cells by where they trained: {', '.join(f'{k} {n}' for k,n in sorted(where.items()))}."] if moved else []) + [
              f"Started {d['started']}, last update {d.get('updated', '-')}.", "", "Commands:", "", *[f"    {x}" for x in d['commands']], ""]
    return '\n'.join(lines)

def gain_figure(d):
    "Gain over CE and over KD (test, paired, 95% intervals) against the teacher/student parameter ratio: one line per variant, in one colour on both panels."
    import matplotlib.pyplot as plt
    c, t = d['config'], teacher_of(d)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    params = {r['student']: r['params'] for r in d['runs']}
    ratios = sorted(t['params']/params[s] for s in c['students'] if s in params)
    n = len(c['variants'])
    for ax, base in zip(axes, ('ce', 'kd')):
        for i,v in enumerate(c['variants']):
            if v==base: continue
            pts = [(t['params']/params[s], *mean_ci(paired(d, s, v, base, 'test_acc'))) for s in c['students'] if s in params]
            pts = sorted(p for p in pts if p[1]==p[1])
            dodge = 1.025**(i-(n-1)/2) # side by side at each ratio (the axis is logarithmic), so that intervals do not hide each other
            if pts: ax.errorbar([p[0]*dodge for p in pts], [p[1] for p in pts], yerr=[0 if p[2]!=p[2] else p[2] for p in pts], marker='o', capsize=3,
                                color=f'C{i}', label=VARIANTS[v][2])
        ax.axhline(0, color='k', lw=0.8); ax.set_xscale('log'); ax.grid(alpha=0.3)
        ax.set_xticks(ratios, [f'{r:.1f}' for r in ratios]); ax.minorticks_off()
        if ratios: ax.set_xlim(ratios[0]/1.25, ratios[-1]*1.25) # room for the side-by-side points
        ax.set_xlabel(f"teacher ({t['model']}) / student parameters"); ax.set_title(f"test accuracy gain over {base.upper()} (points)")
        if ax.get_legend_handles_labels()[0]: ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

def draw(d, fn):
    "Save `gain_figure(d)` as the PNG `fn`, atomically."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig = gain_figure(d)
    atomic_save(fig, fn, save=lambda f, path: f.savefig(path, dpi=80, format='png'))
    plt.close(fig)

def cells(args):
    "(student, variant, seed) in training order: student by student, so each student's block of seeds completes before the next."
    return [(s, v, seed) for s in args.students for v in sorted(args.variants, key=TRAIN_ORDER.index) for seed in args.seeds]

@contextmanager
def claimed(path):
    "True while this process holds `path`'s lock, False if another process holds it (the cell is being trained there)."
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a') as f:
        try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False; return
        try: yield True
        finally: fcntl.flock(f, fcntl.LOCK_UN)

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.amp and not (args.report or args.merge): check_native(args.amp)
    if not args.amp: torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False # a float32 grid computes in float32 on a GPU too, not TF32
    res = Results(args, argv)
    if args.merge:
        for fn in args.merge: res.merge(fn)
    if args.report or args.merge:
        atomic_save(report(res.d), res.stem.with_suffix('.md'), save=write_text); draw(res.d, res.stem.with_suffix('.png')); return
    if args.prepare:
        for c in cells(args): prepare(args, res, *c)
        return
    left = cells(args)
    while left: # a cell that would wait for a piece another process is making goes to the back; when every cell left would, wait for the first
        later = [c for c in left if not attempt(args, res, *c, wait=False)]
        if later==left: attempt(args, res, *later.pop(0), wait=True)
        left = later
    print(report(res.d))

if __name__=='__main__': main()
