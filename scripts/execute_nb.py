"""Execute a notebook in place as nbdev_test would (skipping `#| eval: false`, nbdev_export and `tst_flags` cells such as `#| cuda`) and keep its outputs, without stderr or progress bars.
Usage: python scripts/execute_nb.py nbs/10_viz.ipynb, then nbdev_clean --fname on it. For pages whose outputs are committed (tutorials, plots)."""
import sys, re, os
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.config import get_config
fn = Path(sys.argv[1]).resolve()
nb = read_nb(fn)
flags = '|'.join(map(re.escape, get_config().tst_flags.split()))
def skip(cell):
    if cell.cell_type!='code': return True
    return 'nbdev_export(' in cell.source or re.search(rf'^#\|\s*(eval:\s*false|({flags})\b)', cell.source, re.M) is not None
k = CaptureShell(fn)
with working_directory(fn.parent): k.run_all(nb, exc_stop=True, preproc=skip)
def printed(text):
    "What a terminal would show of `text`: each line as its last carriage return left it, without fastprogress's bars."
    lines = [l.split('\r')[-1].rstrip() for l in text.split('\n')]
    return '\n'.join(l for l in lines if l.strip(' █') and not re.search(r'\|[█-]*\|\s+[\d.]+%', l)) + '\n'

for c in nb.cells:
    if c.cell_type!='code': continue
    c.outputs = [o for o in c.get('outputs', []) if o.get('name')!='stderr']
    for o in c.outputs:
        if o.get('name')=='stdout': o['text'] = printed(''.join(o['text'])).splitlines(keepends=True)
    c.outputs = [o for o in c.outputs if o.get('name')!='stdout' or ''.join(o['text']).strip()]
write_nb(nb, fn)
