"""Write README.md from nbs/index.ipynb: its markdown cells and its visible code cells, without their outputs.

Cells marked `#| hide` or `#| export` are left out, and so are the `#|` directive lines of the others. Outputs (such as
the example's training log) are left out too: they stay in the notebook.

nbdev's own `nbdev_readme` does this through Quarto, which cannot be installed on our machines; this script
needs nothing but the standard library. `.ci/run` fails when README.md is not what this script makes."""
import json, re
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def directives(src): return [l[3:].strip() for l in src.splitlines() if l.startswith('#|')]

def cell_md(cell):
    src = ''.join(cell['source'])
    if cell['cell_type']=='markdown': return src
    if cell['cell_type']!='code' or any(d.startswith(('hide', 'export')) for d in directives(src)): return None
    code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
    return f"```python\n{code}\n```" if code else None

def readme(nb_path=root/'nbs'/'index.ipynb'):
    "README text from the notebook at `nb_path`; the title line `# x` and its `> summary` stay as they are."
    cells = json.loads(Path(nb_path).read_text())['cells']
    parts = [m for m in map(cell_md, cells) if m]
    note = "<!-- Generated from nbs/index.ipynb by scripts/make_readme.py: edit the notebook, not this file. -->\n\n"
    return note + re.sub(r'\n{3,}', '\n\n', '\n\n'.join(parts)).strip() + '\n'

if __name__ == '__main__': (root/'README.md').write_text(readme())
