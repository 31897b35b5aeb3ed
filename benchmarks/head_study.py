"""Head study: how head kind, head learning rate and head epochs shape each cohort member, and which choice teaches the student best.

Part 1, the members (first seed): for each head kind, learning rate and number of epochs, heads are trained on the shipped teacher and each
member (three heads and the teacher's classifier) is measured on the validation split: accuracy, NLL, ECE, the largest logit,
and the entropy and mean top probability of its softened output at T=5, before and after temperature scaling.
Part 2, the students: for each head kind and learning rate, DIH students with and without calibration, next to CE and KD
(with and without calibration), each seed a set of `ihkd.run.Run`s sharing teacher and heads through one work folder.
Choices are read off the students' *validation* accuracy; test accuracy is reported, never used.

Every finished entry is written at once (atomically) to the JSON, so an interrupted study resumes where it stopped.

    OMP_NUM_THREADS=1 python benchmarks/head_study.py --seeds 42 43        # the study on the embedded data, CPU
    python benchmarks/head_study.py --report                                # redraw tables and plot from the JSON
"""
from __future__ import annotations
import argparse, json, platform, shlex, sys
from datetime import datetime, timezone
from pathlib import Path

from ihkd.core import atomic_save, defaults, versions, write_text
from ihkd.calibration import member_stats, cohort_temperatures
from ihkd.run import Run

KINDS, LRS = ('paper', 'pooled', 'conv'), (0.1, 0.01, 0.001)
RESULTS = Path(__file__).parent/'results'

def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=int, nargs='+', default=[42])
    p.add_argument('--kinds', nargs='+', default=list(KINDS), choices=list(KINDS))
    p.add_argument('--lrs', type=float, nargs='+', default=list(LRS), help="head learning rates of part 1")
    p.add_argument('--student_lrs', type=float, nargs='+', default=list(LRS), help="head learning rates of part 2")
    p.add_argument('--head_epochs', type=int, nargs='+', default=[3, 10], help="head epochs of part 1 (part 2 uses the first)")
    p.add_argument('--n_train', type=int, help="training images used (train + valid); default: all of the embedded data")
    p.add_argument('--epochs', type=int, default=defaults.student_epochs, help="student epochs (default: %(default)s)")
    p.add_argument('--work', default='work/head_study', help="folder of the runs and of the pieces they share")
    p.add_argument('--out', default=str(RESULTS/'head_study.json'))
    p.add_argument('--machine', default=f"{platform.machine()} CPU, {__import__('os').cpu_count()} cores, one thread per process")
    p.add_argument('--no_members', action='store_true', help="skip part 1")
    p.add_argument('--only', nargs='+', help="part 2: only these students, by name (ce, kd, kd-cal, dih-paper-lr0.01, dih-cal-pooled-lr0.1, ...)")
    p.add_argument('--report', action='store_true', help="only redraw the markdown and the plot from the JSON")
    return p

def load(f):
    return json.loads(Path(f).read_text()) if Path(f).exists() else {'members': [], 'students': []}

def save(d, f):
    atomic_save(json.dumps(d, indent=1), f, save=write_text)
    report(d, f)

def _common(args):
    "Run options every run of the study shares."
    return dict(n_train=args.n_train, student_epochs=args.epochs, work=Path(args.work)/'shared', quiet=True)

def done(entries, **key): return any(all(e.get(k)==v for k,v in key.items()) for e in entries)

def members(d, f, args, seed):
    "Part 1: the members of every head configuration, on the validation split."
    for kind in args.kinds:
        for lr in args.lrs:
            for ep in args.head_epochs:
                key = dict(seed=seed, head=kind, head_lr=lr, head_epochs=ep)
                if done(d['members'], **key): continue
                run = Run(Path(args.work)/f'seed{seed}'/f'heads-{kind}-lr{lr}-e{ep}', head=kind, head_lr=lr, head_epochs=ep,
                          seed=seed, methods=['dih'], **_common(args))
                hm, dls = run.heads(), run._data()
                h = run.record['steps']['heads']
                entry = {**key, 'train_loss': h['history']['train_loss'][-1], 'valid_loss': h['history']['valid_loss'][-1], 'raw': h['members']} # the run measured them
                try: taus = cohort_temperatures(hm, dls)
                except ValueError as e: entry['refused'] = str(e) # no temperature fits a member (at chance, say): nothing to calibrate
                else: entry.update(tau=taus, calibrated=member_stats(hm, dls.valid, taus=taus))
                d['members'].append(entry)
                save(d, f)
                print(f"seed {seed} {kind:>6} lr {lr:<6} {ep:>2} epochs: head train loss {d['members'][-1]['train_loss']:.3f}", flush=True)

def students(d, f, args, seed):
    "Part 2: CE, KD and DIH students for every head kind and learning rate, with and without calibration."
    ep = args.head_epochs[0]
    configs = [('ce', None, None, False), ('kd', None, None, False), ('kd', None, None, True)]
    configs += [('dih', kind, lr, cal) for kind in args.kinds for lr in args.student_lrs for cal in (False, True)]
    for method, kind, lr, cal in configs:
        key = dict(seed=seed, method=method, head=kind, head_lr=lr, calibrate=cal)
        name = f"{method}{'-cal' if cal else ''}" + (f"-{kind}-lr{lr}" if kind else '')
        if done(d['students'], **key) or (args.only and name not in args.only): continue
        opts = dict(head=kind, head_lr=lr, head_epochs=ep) if kind else {}
        run = Run(Path(args.work)/f'seed{seed}'/name, methods=[method], calibrate=cal, seed=seed, **_common(args), **opts)
        try: rec = run.run()['steps'][f'student_{method}']
        except ValueError as e: # calibration refused (a member at chance, or right on every image): recorded as such
            d['students'].append({**key, 'refused': str(e)}); save(d, f)
            print(f"seed {seed} {name:>22}: refused: {e}", flush=True)
            continue
        d['students'].append({**key, 'valid_acc': rec['valid_acc'], 'test_acc': rec['test_acc'], 'seconds': rec['seconds'],
                              'tau': run.record['steps'].get('calibration', {}).get('tau')})
        save(d, f)
        print(f"seed {seed} {name:>22}: valid {rec['valid_acc']:.4f}", flush=True)

def _mean(xs): return sum(xs)/len(xs) if xs else float('nan') # nan: not measured (yet)

def report(d, f):
    "The markdown tables and the plot beside the JSON."
    f = Path(f)
    cmds = ''.join(f"\n    {c}" for c in d.get('commands', []))
    lines = [f"# Head study\n\nCommands, in order:\n{cmds}\n\nMachine: {d.get('machine', '')}  \nVersions: {d.get('versions', '')}\n",
             "## Members, on the validation split (T = 5)\n",
             "| head | lr | epochs | head train loss | member | accuracy | NLL | ECE | max abs logit | entropy | top prob | tau | entropy, calibrated | top prob, calibrated |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in sorted(d['members'], key=lambda m: (m['head'], -m['head_lr'], m['head_epochs'], m['seed'])):
        for i,r in enumerate(m['raw']):
            c = f"{m['calibrated'][i]['tau']:.3f} | {m['calibrated'][i]['entropy']:.3f} | {m['calibrated'][i]['max_prob']:.3f}" if 'calibrated' in m else "refused | | "
            lines.append(f"| {m['head']} | {m['head_lr']} | {m['head_epochs']} | {m['train_loss']:.3f} | {r['name']} | {r['accuracy']:.4f} | "
                         f"{r['nll']:.3f} | {r['ece']:.3f} | {r['max_logit']:.1f} | {r['entropy']:.3f} | {r['max_prob']:.3f} | {c} |")
    lines += ["\n## Students (ResNet-8), validation and test accuracy\n",
              "| method | head | head lr | calibrated | seeds | valid acc (mean) | test acc (mean) | valid acc per seed |", "|---|---|---:|---|---:|---:|---:|---|"]
    groups = {}
    for s in d['students']: groups.setdefault((s['method'], s['head'], s['head_lr'], s['calibrate']), []).append(s)
    for (method, head, lr, cal),ss in groups.items():
        if refused := [s for s in ss if 'refused' in s]:
            lines.append(f"| {method} | {head or ''} | {lr or ''} | {'yes' if cal else 'no'} | {len(ss)} | refused | | {refused[0]['refused']} |")
            continue
        lines.append(f"| {method} | {head or ''} | {lr or ''} | {'yes' if cal else 'no'} | {len(ss)} | {100*_mean([s['valid_acc'] for s in ss]):.2f} | "
                     f"{100*_mean([s['test_acc'] for s in ss]):.2f} | {', '.join('%.2f' % (100*s['valid_acc']) for s in ss)} |")
    write_text('\n'.join(lines)+'\n', f.with_suffix('.md'))
    plot(d, f.with_suffix('.png'))

def plot(d, fname):
    "Per head configuration: each member's top probability at T=5 (raw and calibrated), and the DIH students' validation accuracy."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ms = [m for m in d['members'] if m['head_epochs']==min(x['head_epochs'] for x in d['members'])] if d['members'] else []
    fig, axs = plt.subplots(1, 2, figsize=(12, 4))
    labels = sorted({(m['head'], m['head_lr']) for m in ms}, key=lambda k: (k[0], -k[1]))
    names = [r['name'] for r in ms[0]['raw']] if ms else []
    for j,n in enumerate(names):
        raw = [_mean([m['raw'][j]['max_prob'] for m in ms if (m['head'], m['head_lr'])==k]) for k in labels]
        cal = [_mean([m['calibrated'][j]['max_prob'] for m in ms if (m['head'], m['head_lr'])==k and 'calibrated' in m]) for k in labels]
        axs[0].plot(range(len(labels)), raw, 'o-', label=f'{n}')
        axs[0].plot(range(len(labels)), cal, 'x--', color=axs[0].lines[-1].get_color(), label=f'{n}, calibrated')
    axs[0].set_xticks(range(len(labels)), [f'{h}\nlr {lr}' for h,lr in labels], fontsize=8)
    axs[0].set_ylabel('mean top probability at T=5'); axs[0].set_title('How soft each member teaches (validation)')
    axs[0].legend(fontsize=7, ncol=2)
    st = [s for s in d['students'] if s['method']=='dih' and 'refused' not in s]
    keys = sorted({(s['head'], s['head_lr']) for s in st}, key=lambda k: (k[0], -k[1]))
    for cal,mk in ((False, 'o'), (True, 'x')):
        axs[1].plot(range(len(keys)), [100*_mean([s['valid_acc'] for s in st if (s['head'], s['head_lr'])==k and s['calibrate']==cal]) for k in keys],
                    mk+'-', label='DIH, calibrated' if cal else 'DIH')
    for method,cal,style in (('ce', False, ':'), ('kd', False, '--'), ('kd', True, '-.')):
        v = [s['valid_acc'] for s in d['students'] if s['method']==method and s['calibrate']==cal and 'refused' not in s]
        if v: axs[1].axhline(100*_mean(v), ls=style, color='gray', label=f"{method.upper()}{', calibrated' if cal else ''}")
    axs[1].set_xticks(range(len(keys)), [f'{h}\nlr {lr}' for h,lr in keys], fontsize=8)
    axs[1].set_ylabel('student validation accuracy (%)'); axs[1].set_title('Which heads teach a ResNet-8 best (validation)')
    axs[1].legend(fontsize=7)
    fig.tight_layout(); fig.savefig(fname, dpi=110); plt.close(fig)

def main(argv=None):
    args = parser().parse_args(argv)
    f = Path(args.out)
    d = load(f)
    if args.report: return report(d, f)
    cmd = 'OMP_NUM_THREADS=1 python benchmarks/head_study.py ' + shlex.join(argv if argv is not None else sys.argv[1:])
    d['commands'] = [c for c in d.get('commands', []) if c!=cmd] + [cmd] # every command that added to the results, in order
    d.update(machine=args.machine, versions=versions(), started=d.get('started', datetime.now(timezone.utc).isoformat(timespec='seconds')))
    if not args.no_members: members(d, f, args, args.seeds[0]) # the members of one seed; the students of every seed
    for seed in args.seeds: students(d, f, args, seed)
    d['finished'] = datetime.now(timezone.utc).isoformat(timespec='seconds')
    save(d, f)

if __name__=='__main__': main()
