"""Fail when a markdown link between docs pages points at a page, or a place on a page, that does not exist.

Reads the markdown cells of every notebook under nbs/ and finds links to other pages, such as
`[data](05_data.ipynb#anchor)` or `[heads](../heads.html)` (images and http(s) links are not checked). Each target is
resolved against its notebook's folder and must be a page under nbs/; a `.html` target names the page nbdev makes of a
notebook (`01_heads.ipynb` becomes `heads.html`). A `#anchor` after the page (or alone, for the same page) must be an id
on the rendered page: a heading's, or one written out (`{#id}`, `id="..."`). Prints each broken link as
`notebook: target` and exits 1 if there is one.
Usage: python scripts/check_links.py (`.ci/run` runs it)."""
import functools, json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nbs = root/'nbs'
link_re = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s#]*)(?:#([^)\s]*))?(?:\s+"[^"]*")?\)')
page_exts = ('.ipynb', '.html', '.md', '.qmd')

def html_page(p): # the page nbdev makes of a notebook: numeric prefix dropped, lower case (nbdev.doclinks._nbpath2html)
    return p.with_name(re.sub(r'^\d+[a-zA-Z0-9]*_', '', p.stem.lower()) + '.html') if p.suffix=='.ipynb' else p.with_suffix('.html')

notebooks = sorted(p for p in nbs.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
sources = [p.resolve() for p in notebooks + list(nbs.rglob('*.md')) + list(nbs.rglob('*.qmd'))]
page_source = {**{p:p for p in sources}, **{html_page(p):p for p in sources}}

def slug(text):
    "The id pandoc's `auto_identifiers` (so Quarto, so nbdev) gives a heading: its text without formatting, lower case, only letters, digits, `_-.` and spaces kept, words joined by `-`, everything before the first letter dropped."
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', text)    # a link or image: its text
    parts = re.split(r'(`+)(.*?)\1', text)                      # code spans are kept as written ...
    text = ''.join(p if i%3==2 else '' if i%3==1 else re.sub(r'<[^>]*>|\\|\*|(?<!\w)_+|_+(?!\w)', '', p)
                   for i,p in enumerate(parts))                 # ... elsewhere html tags, escapes and emphasis go
    text = ''.join(c for c in text.lower() if c.isalnum() or c in '_-.' or c.isspace())
    text = re.sub(r'^[^a-z\u00c0-\uffff]*', '', '-'.join(text.split())) # ids start with a letter
    return text or 'section'

def md_ids(md):
    "The ids a markdown text puts on the page, in order: each heading's (its own `{#id}` or `slug`), then those written out."
    ids, fenced = [], None
    for line in md.splitlines():
        fence = re.match(r'\s*(`{3,}|~{3,})', line)
        if fence and (fenced is None or fence.group(1).startswith(fenced)): fenced = None if fenced else fence.group(1); continue
        if fenced: continue
        h = re.match(r'#{1,6}\s+(.*?)(?:\s+#+)?\s*(?:\{([^}]*)\})?\s*$', line)
        if h:
            own = re.search(r'(?:^|\s)#([^\s}]+)', h.group(2) or '')
            ids.append(('own', own.group(1)) if own else ('auto', slug(h.group(1))))
    written = [m for attrs in re.findall(r'\{([^}]*)\}', md) for m in re.findall(r'(?:^|\s)#([\w.:-]+)', attrs)]
    written += re.findall(r'\b(?:id|name)\s*=\s*["\']([^"\']+)["\']', md)
    return ids + [('own', i) for i in written]

def showdoc_ids(src, outputs):
    "The heading `show_doc` writes for each symbol a cell documents: `### qualname`, or `name=` (nbdev runs these cells again for the docs, so their committed outputs count only where the call is not read)."
    names = [n or s for s,n in re.findall(r'^\s*show_doc\(\s*([\w.]+)(?:[^\n]*?\bname\s*=\s*["\']([^"\']+)["\'])?', src, re.M)]
    return [('auto', slug(n)) for n in names] or [i for o in outputs for i in md_ids(o)]

def cell_outputs(cell):
    "The markdown and html a code cell shows."
    for o in cell.get('outputs', []):
        for k in ('text/markdown', 'text/html'):
            if k in o.get('data', {}): yield ''.join(o['data'][k])

@functools.cache # a page is read once, however many links point at it
def anchors(page):
    "Every id on the docs page nbdev makes of `page` (a notebook or markdown file)."
    if page.suffix!='.ipynb': return number_ids(md_ids(page.read_text(encoding='utf-8')))
    cells, found, titled = json.loads(page.read_text(encoding='utf-8'))['cells'], [], False
    for cell in cells:
        src = ''.join(cell['source'])
        if cell['cell_type']=='raw': titled |= bool(re.search(r'^title:', src, re.M))
        elif cell['cell_type']=='markdown':
            if not titled and re.search(r'^#\s+\S', src, re.M): titled = True; continue # nbdev makes it the title and front matter
            if src.strip().startswith('#') and src.strip().endswith(' -'): continue     # nbdev drops `## Name -` cells
            found += md_ids(src)
        elif cell['cell_type']=='code':
            outs = list(cell_outputs(cell))
            found += showdoc_ids(src, outs) if re.search(r'^\s*show_doc\(', src, re.M) else [i for o in outs for i in md_ids(o)]
    return number_ids(found)

def number_ids(ids):
    "Pandoc numbers a repeated automatic id: `x`, `x-1`, `x-2`."
    seen = set()
    for kind,i in ids:
        if kind=='auto' and i in seen: i = next(f'{i}-{n}' for n in range(1, 10**4) if f'{i}-{n}' not in seen)
        seen.add(i)
    return seen

def links(nb):
    "Relative links to pages, or to places on this page, in the markdown cells of notebook `nb`: (target, anchor)."
    for cell in json.loads(nb.read_text(encoding='utf-8'))['cells']:
        if cell['cell_type']=='markdown':
            for t,a in link_re.findall(''.join(cell['source'])):
                if '://' not in t and (t.endswith(page_exts) or (not t and a)): yield t,a

def problem(nb, t, a):
    "What is wrong with the link to `t#a` in `nb`, or None."
    page = page_source.get((nb.parent/t).resolve()) if t else nb.resolve()
    if page is None: return 'does not exist'
    if a and a not in anchors(page): return f'has no anchor #{a}'

broken = [(nb, t, a, p) for nb in notebooks for t,a in links(nb) if (p := problem(nb, t, a))]
for nb,t,a,p in broken: print(f"{nb.relative_to(root)}: {t}{'#'+a if a else ''} {p}")
sys.exit(1 if broken else 0)
