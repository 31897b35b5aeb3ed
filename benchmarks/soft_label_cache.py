"""What the soft-label cache buys and costs: step time against CE and live KD/DIH, build time and size, top-k error, and student accuracy from the cache against live teaching.

Parts (each writes its entry of results/soft_label_cache.json; the markdown is rebuilt from the whole file):
- speed:    median training-step time of CE, live KD, cached KD, live DIH and cached DIH (ResNet-56 teacher with
            paper heads, ResNet-8 student, batch 64, embedded Fashion-MNIST), and a ResNet-56 CE training step,
            in interleaved rounds as in step_time.py; the cache's build time per epoch of crops, counted in
            teacher training epochs, and its size. Weights are random: they do not change the cost of a step.
- accuracy: `ihkd run` (the shipped ResNet-20, paper heads, ResNet-8 students, CE, KD and DIH, the defaults)
            with and without --cache, for each seed: validation and test accuracy, paired differences.
- topk:     on the trained cohort of the first seed's cached run: the probability mass that a top-k store drops
            at T=5 and the relative error of each member's KD term, against the run's KD student's logits.

    python benchmarks/soft_label_cache.py --parts speed
    python benchmarks/soft_label_cache.py --parts accuracy topk --seeds 42 43 44
"""
import argparse, json, math, platform, statistics, sys, tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from fastai.learner import Learner
from fastai.torch_core import set_seed

sys.path.insert(0, str(Path(__file__).parent))
from step_time import StepTimer, sync_for
from ihkd.cache import CachedDistill, build_cache, cache_bytes
from ihkd.callbacks import CohortDistill
from ihkd.core import atomic_save, locked, versions, write_text
from ihkd.data import get_data
from ihkd.heads import HeadedModel
from ihkd.losses import kd_loss
from ihkd.models import get_model
from ihkd.recipe import load_checkpoint, reference_opt
from ihkd.run import Run

SPEED = ('ce', 'kd', 'kd_cached', 'dih', 'dih_cached', 'teacher')
T95 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776} # two-sided 95% t quantiles by number of seeds (n-1 degrees of freedom)

def _device(): return torch.cuda.get_device_name() if torch.cuda.is_available() else f'CPU ({platform.machine()}, {torch.get_num_threads()} threads)'

def speed(args):
    "Step times side by side, the build time of a cache in teacher epochs, and its size."
    set_seed(0)
    dls = get_data('embedded', bs=64, replay=0)
    teacher = get_model(args.teacher, 10, 1)
    hm = HeadedModel(teacher, x=dls.valid.one_batch()[0][:2])
    hm.heads_trained = True
    with tempfile.TemporaryDirectory() as d:
        cache = build_cache(hm, dls.train, Path(d)/'cache', epochs=args.build_epochs, quiet=True)
        cbs = {'ce': [], 'kd': [CohortDistill(teacher)], 'kd_cached': [CachedDistill(teacher, cache)],
               'dih': [CohortDistill(hm)], 'dih_cached': [CachedDistill(hm, cache)], 'teacher': []}
        learners = {m: Learner(dls, get_model(args.teacher if m=='teacher' else args.student, 10, 1), opt_func=reference_opt(), cbs=cbs[m])
                    for m in SPEED}
        times, sync = {m: [] for m in SPEED}, sync_for('cpu')
        for _ in range(args.rounds):
            for m,learn in learners.items():
                timer = StepTimer(args.warmup+args.steps, sync)
                with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.1, cbs=timer)
                times[m] += timer.times[args.warmup:]
        step = {m: statistics.median(t) for m,t in times.items()}
        teacher_epoch = step['teacher']*len(dls.train)
        build = cache.meta['seconds']/args.build_epochs
        size = sum(f['bytes'] for f in cache.meta['files'].values())/args.build_epochs
    return {'teacher': args.teacher, 'student': args.student, 'rounds': args.rounds, 'steps': args.steps, 'step_seconds': step,
            'ratios': {m: step[m]/step['ce'] for m in SPEED}, 'batches_per_epoch': len(dls.train), 'n_train': len(dls.train_ds),
            'build_seconds_per_epoch': build, 'teacher_epoch_seconds': teacher_epoch, 'build_in_teacher_epochs': build/teacher_epoch,
            'bytes_per_epoch': size, 'members': cache.names, 'device': _device()}

def _run(args, seed, cache):
    return Run(Path(args.work)/f"{'cached' if cache else 'live'}-s{seed}", data='embedded', seed=seed, cache=cache,
               methods=['ce', 'kd', 'dih'], work=Path(args.work)/'shared', quiet=True)

def accuracy(args):
    "Validation and test accuracy of the default run's students, taught live and from the cache, for each seed."
    res = {}
    for seed in args.seeds:
        for cache in (False, True):
            rec = _run(args, seed, cache).run()['steps']
            res[f"{'cached' if cache else 'live'}-{seed}"] = {
                m: {k: rec[f'student_{m}'][k] for k in ('valid_acc', 'test_acc', 'seconds')} for m in ('ce', 'kd', 'dih')}
            if cache: res[f'cached-{seed}']['cache_seconds'] = rec['cache_heads']['seconds']
    return {'seeds': args.seeds, 'runs': res, 'device': _device()}

def topk(args, ks=(1, 2, 3, 5)):
    "Dropped mass and KD-term error of top-k stores, per member, on the trained cohort of the first seed's cached run."
    run = _run(args, args.seeds[0], True)
    hm = run.heads()
    dls = run._data(replay=True)
    student = load_checkpoint(get_model('resnet8', 10, 1), run.out/'student_kd.pth').eval()
    with tempfile.TemporaryDirectory() as d:
        full = build_cache(hm, dls.train, Path(d)/'full', epochs=1, dtype='float32', quiet=True)
        tops = {k: build_cache(hm, dls.train, Path(d)/f'top{k}', epochs=1, dtype='float32', topk=k, quiet=True) for k in ks}
        dl = dls.train.new(shuffle=False, drop_last=False); dl.set_epoch(0)
        sums = {k: {m: [0., 0.] for m in hm.names} for k in ks}
        n = 0
        with torch.no_grad():
            for xb,_ in dl:
                s, n = student(xb).float(), n+1
                t = full.lookup(0, dl.idxs, list(range(len(hm.names))))
                for k,c in tops.items():
                    tk = c.lookup(0, dl.idxs, list(range(len(hm.names))))
                    for j,m in enumerate(hm.names):
                        ref = kd_loss(s, t[:,j], 5.)
                        sums[k][m][0] += float(1 - F.softmax(t[:,j]/5., -1).topk(k, -1).values.sum(-1).mean())
                        sums[k][m][1] += float((kd_loss(s, tk[:,j], 5.)-ref).abs()/ref)
    return {'seed': args.seeds[0], 'members': hm.names, 'T': 5.,
            'dropped_mass': {k: {m: v[0]/n for m,v in d.items()} for k,d in sums.items()},
            'kd_error': {k: {m: v[1]/n for m,v in d.items()} for k,d in sums.items()}}

def sizes():
    "Cache sizes of the paper's CIFAR-100 protocol (45,000 training images, 200 epochs, 3 heads + classifier), and of full Fashion-MNIST."
    return {'cifar100_200ep': {str(k): cache_bytes(200, 45_000, 4, 100, 'float16', k) for k in (None, 10, 5)} |
                              {'float32': cache_bytes(200, 45_000, 4, 100, 'float32')},
            'fmnist_54k': {f'{e} epochs': cache_bytes(e, 54_000, 4, 10) for e in (30, 200)}}

def _mean_ci(v):
    m = statistics.mean(v)
    return m, (T95[len(v)]*statistics.stdev(v)/math.sqrt(len(v)) if len(v) in T95 else float('nan'))

def report(d):
    "The markdown page of the results file `d`."
    out = ["# Soft-label cache: speed, size, top-k error, accuracy", ""]
    if 'speed' in d:
        s = d['speed']; r = s['ratios']; t = s['step_seconds']
        out += [f"## Step time ({s['device']})", "",
                f"Teacher {s['teacher']} with paper heads (random weights: they do not change the cost), student {s['student']}, batch 64, "
                f"embedded Fashion-MNIST; median of {s['rounds']} interleaved rounds x {s['steps']} steps per method. `command`: `{s['command']}`", "",
                "| step | ms | / CE |", "|---|---:|---:|"]
        names = {'ce': 'CE', 'kd': 'KD, live teacher', 'kd_cached': 'KD, from the cache', 'dih': 'DIH, live cohort',
                 'dih_cached': 'DIH, from the cache', 'teacher': f"{s['teacher']} CE training step (the teacher)"}
        out += [f"| {names[m]} | {1000*t[m]:.1f} | {r[m]:.3f} |" for m in SPEED]
        out += ["", f"**Cached DIH / CE: {r['dih_cached']:.3f}; cached KD / CE: {r['kd_cached']:.3f}** (target: at most 1.10). "
                f"Live: DIH / CE {r['dih']:.2f}, KD / CE {r['kd']:.2f}.", "",
                f"Building the cache of the {len(s['members'])} members ({', '.join(s['members'])}) takes {s['build_seconds_per_epoch']:.1f} s per epoch of "
                f"{s['n_train']:,} crops, against {s['teacher_epoch_seconds']:.1f} s for a teacher training epoch ({s['batches_per_epoch']} steps): "
                f"**{s['build_in_teacher_epochs']:.2f} teacher epochs per cached epoch**. Size: {s['bytes_per_epoch']/2**20:.2f} MiB per epoch (float16).", ""]
    z = sizes()
    c = z['cifar100_200ep']
    out += ["## Sizes, computed", "",
            "| cache | size |", "|---|---:|",
            f"| CIFAR-100, 200 epochs x 45,000 images x 4 members (3 heads + classifier), float32 | {c['float32']/2**30:.2f} GiB |",
            f"| same, float16 | {c['None']/2**30:.2f} GiB |",
            f"| same, top 10 (float16 values + uint8 classes) | {c['10']/2**30:.2f} GiB |",
            f"| same, top 5 | {c['5']/2**30:.2f} GiB |",
            f"| Fashion-MNIST, 30 epochs x 54,000 images x 4 members, float16 | {z['fmnist_54k']['30 epochs']/2**20:.0f} MiB |",
            f"| Fashion-MNIST, 200 epochs | {z['fmnist_54k']['200 epochs']/2**30:.2f} GiB |", ""]
    if 'topk' in d:
        k = d['topk']; ms = k['members']
        out += ["## Top-k error", "", f"Trained cohort of the seed-{k['seed']} cached run (shipped ResNet-20, paper heads), every crop of epoch 0, "
                f"against the logits of that run's KD student, T={k['T']:g}. Per member: mean probability mass of the classes left out, and mean "
                "relative error of the batch's KD term. `command`: " + f"`{k['command']}`", "",
                "| k | " + ' | '.join(f"{m} mass / KD error" for m in ms) + " |", "|---:|" + "---:|"*len(ms)]
        out += [f"| {kk} | " + ' | '.join(f"{k['dropped_mass'][kk][m]:.4f} / {k['kd_error'][kk][m]:.4f}" for m in ms) + " |" for kk in k['dropped_mass']]
        out += [""]
    if 'accuracy' in d:
        a = d['accuracy']; seeds = a['seeds']; runs = a['runs']
        out += [f"## Accuracy from the cache vs live ({a['device']})", "",
                f"`ihkd run` defaults (shipped ResNet-20, paper heads at lr 0.001, calibration on, ResNet-8 students, 6 epochs) on the embedded data, "
                f"seeds {', '.join(map(str, seeds))}, each without and with `--cache`. Live runs draw their crops at random, cached ones replay them. "
                f"Differences are cached minus live, paired by seed, with 95% t intervals. `command`: `{a['command']}`", "",
                "| student | live valid | cached valid | diff valid | live test | cached test | diff test | time live / cached (s) |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m in ('ce', 'kd', 'dih'):
            cols = []
            for split in ('valid_acc', 'test_acc'):
                lv = [100*runs[f'live-{s}'][m][split] for s in seeds]; cv = [100*runs[f'cached-{s}'][m][split] for s in seeds]
                dm, dci = _mean_ci([c-l for c,l in zip(cv, lv)])
                cols += [f"{statistics.mean(lv):.2f}", f"{statistics.mean(cv):.2f}", f"{dm:+.2f} ± {dci:.2f}"]
            tl = statistics.mean(runs[f'live-{s}'][m]['seconds'] for s in seeds); tc = statistics.mean(runs[f'cached-{s}'][m]['seconds'] for s in seeds)
            out.append(f"| {m.upper()} | " + ' | '.join(cols) + f" | {tl:.0f} / {tc:.0f} |")
        cs = statistics.mean(runs[f'cached-{s}']['cache_seconds'] for s in seeds)
        out += ["", f"Building each run's cache (6 epochs of the heads model's 4 members) took {cs:.0f} s on average, once for both KD and DIH.", ""]
    out += [f"Machine: {platform.machine()} CPU ({d.get('cpus', '?')} cores), no GPU. Versions: {d['versions']}. Date: {d['date']}."]
    return '\n'.join(out) + '\n'

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--parts', nargs='+', default=['speed', 'accuracy', 'topk'], choices=['speed', 'accuracy', 'topk'])
    p.add_argument('--seeds', type=int, nargs='+', default=[42, 43, 44])
    p.add_argument('--teacher', default='resnet56'); p.add_argument('--student', default='resnet8')
    p.add_argument('--steps', type=int, default=30); p.add_argument('--warmup', type=int, default=3); p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--build_epochs', type=int, default=1)
    p.add_argument('--work', default='runs/soft-label-cache')
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    p.add_argument('--report', action='store_true', help="only rebuild the markdown from the JSON")
    args = p.parse_args()
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    f = out/'soft_label_cache.json'
    command = 'python ' + ' '.join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    for part in ([] if args.report else args.parts):
        res = {**globals()[part](args), 'command': command}
        with locked(out/'.soft_label_cache.lock'): # two processes may run different parts
            d = json.loads(f.read_text()) if f.exists() else {}
            d.update({part: res, 'versions': versions(), 'cpus': len(__import__('os').sched_getaffinity(0)),
                      'date': datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')})
            atomic_save(json.dumps(d, indent=1), f, save=write_text)
    d = json.loads(f.read_text())
    atomic_save(report(d), out/'soft_label_cache.md', save=write_text)
    print(report(d))

if __name__ == '__main__': main()
