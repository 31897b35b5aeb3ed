"Run a notebook's code cells in order in one namespace, without Jupyter or nbdev (the device machines have neither): python scripts/device/run_notebook.py NB."
import json, sys, types
sys.modules['nbdev'] = nbdev = types.ModuleType('nbdev'); sys.modules['nbdev.showdoc'] = sd = types.ModuleType('nbdev.showdoc')
sd.show_doc = lambda *a, **k: None; nbdev.showdoc = sd
try: import IPython.display
except ImportError: # the device image has no IPython either: what a cell would display is dropped
    sys.modules['IPython'] = ip = types.ModuleType('IPython'); sys.modules['IPython.display'] = ipd = types.ModuleType('IPython.display')
    ipd.Markdown = ipd.HTML = str; ipd.display = lambda *a, **k: None; ip.display = ipd
nb, g = json.load(open(sys.argv[1])), {'__name__': '__main__'}
for i,c in enumerate(nb['cells']):
    src = ''.join(c['source'])
    if c['cell_type']!='code' or 'nbdev_export' in src or '#| eval: false' in src: continue
    print(f'--- cell {i}: {src.splitlines()[0][:60]}', flush=True)
    exec(compile(src, f'cell{i}', 'exec'), g)
print('ALL CELLS RAN', flush=True)
