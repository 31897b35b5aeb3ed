"""Fail when a markdown link between docs pages points at a page that does not exist.

Reads the markdown cells of every notebook under nbs/ and finds links to other pages, such as
`[data](05_data.ipynb#anchor)` or `[heads](../heads.html)` (images and http(s) links are not checked). Each target is
resolved against its notebook's folder and must be a page under nbs/; a `.html` target names the page nbdev makes of a
notebook (`01_heads.ipynb` becomes `heads.html`). Prints each broken link as `notebook: target` and exits 1 if there is one.
Usage: python scripts/check_links.py (`.ci/run` runs it)."""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nbs = root/'nbs'
link_re = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s#]+\.(?:ipynb|html|md))(?:#[^)\s]*)?(?:\s+"[^"]*")?\)')

def html_page(p): # the page nbdev makes of a notebook: numeric prefix dropped, lower case (nbdev.doclinks._nbpath2html)
    return p.with_name(re.sub(r'^\d+[a-zA-Z0-9]*_', '', p.stem.lower()) + '.html') if p.suffix=='.ipynb' else p.with_suffix('.html')

notebooks = sorted(p for p in nbs.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
sources = [p.resolve() for p in notebooks + list(nbs.rglob('*.md')) + list(nbs.rglob('*.qmd'))]
pages = set(sources) | set(map(html_page, sources))

def links(nb):
    "Relative links to pages in the markdown cells of notebook `nb`."
    for cell in json.loads(nb.read_text(encoding='utf-8'))['cells']:
        if cell['cell_type']=='markdown':
            yield from (t for t in link_re.findall(''.join(cell['source'])) if '://' not in t)

broken = [(nb, t) for nb in notebooks for t in links(nb) if (nb.parent/t).resolve() not in pages]
for nb,t in broken: print(f"{nb.relative_to(root)}: {t} does not exist")
sys.exit(1 if broken else 0)
