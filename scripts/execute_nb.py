"""Execute a notebook in place as nbdev_test would (skipping `#| eval: false`, nbdev_export and `tst_flags` cells such as `#| cuda`) and keep its outputs, without stderr.
Usage: python scripts/execute_nb.py nbs/07_viz.ipynb, then nbdev_clean --fname on it. For pages whose outputs are committed (tutorials, plots)."""
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
for c in nb.cells:
    if c.cell_type=='code': c.outputs = [o for o in c.get('outputs', []) if o.get('name')!='stderr']
write_nb(nb, fn)
