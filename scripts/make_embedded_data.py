"""Write the Fashion-MNIST subset that ships inside ihkd (`ihkd/assets/fashion-mnist-small/`) from the full files.

The subset is fixed and class-balanced: the first `n_train` training and `n_test` test images of
`ihkd.data.stratified_order(labels, seed)` (600 and 100 per class by default), kept in their original order,
written as gzipped IDX files under the original names, so that `ihkd.data.fashion_mnist('embedded')` reads them
like the full set. The output is byte-for-byte the same on every run.

    python scripts/make_embedded_data.py                       # from Debian's dataset-fashion-mnist package
    python scripts/make_embedded_data.py --src /path/to/fashion-mnist
"""
from pathlib import Path
from fastcore.script import call_parse
from ihkd.data import FMNIST_EMBEDDED, FMNIST_FILES, FMNIST_PATH, read_fashion_mnist, save_idx, stratified_order

LICENSE = """Fashion-MNIST, Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to
permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

README = """# Fashion-MNIST, small subset

A fixed, class-balanced subset of Fashion-MNIST (https://github.com/zalandoresearch/fashion-mnist), shipped with ihkd
so that its examples run offline: {n_train:,} training images ({per_train} per class) and {n_test:,} test images
({per_test} per class), 28x28 grayscale, as gzipped IDX files with the original names. They are the first images of
`ihkd.data.stratified_order(labels, seed={seed})` of each original file, in their original order.

Made by `python scripts/make_embedded_data.py --src {src} --n_train {n_train} --n_test {n_test} --seed {seed}`.
Read with `ihkd.data.fashion_mnist('embedded')`. Licence: MIT, see LICENSE in this folder.
"""

@call_parse
def main(
    src:str=str(FMNIST_PATH), # folder with the full Fashion-MNIST IDX files
    dest:str=str(FMNIST_EMBEDDED), # folder to write the subset to
    n_train:int=6000, # training images to keep
    n_test:int=1000, # test images to keep
    seed:int=0, # seed of `stratified_order`
):
    "Write the embedded Fashion-MNIST subset to `dest`."
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for split,n in (('train', n_train), ('test', n_test)):
        x,y = read_fashion_mnist(src, split)
        idx = stratified_order(y, seed)[:n].sort().values
        for name,a in zip(FMNIST_FILES[split], (x[idx,0], y[idx])): save_idx(a.byte().numpy(), dest/f'{name}.gz')
    (dest/'LICENSE').write_text(LICENSE)
    (dest/'README.md').write_text(README.format(n_train=n_train, n_test=n_test, per_train=n_train//10, per_test=n_test//10,
                                                seed=seed, src=src))
    for f in sorted(dest.iterdir()): print(f'{f.stat().st_size:>10,}  {f}')
