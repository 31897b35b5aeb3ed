"Package metadata, read from settings.ini (the one place where dependencies are declared)."
from configparser import ConfigParser
from pathlib import Path
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read(Path(__file__).parent/'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['Planning', 'Pre-Alpha', 'Alpha', 'Beta', 'Production/Stable', 'Mature', 'Inactive']
lic = licenses[cfg['license']]
min_python = cfg['min_python']
py_versions = [f'3.{i}' for i in range(int(min_python.split('.')[1]), 14)]

requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
explore_requirements = cfg.get('explore_requirements', '').split()
scripts = [s.strip() for s in cfg.get('console_scripts', '').split('\n') if s.strip()]

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    license=lic[0], author=cfg['author'], author_email=cfg['author_email'],
    keywords=cfg['keywords'].split(), url=cfg['git_url'],
    long_description=(Path(__file__).parent/'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    classifiers=[f"Development Status :: {cfg['status']} - {statuses[int(cfg['status'])]}",
                 f"Intended Audience :: {cfg['audience']}", f"License :: {lic[1]}",
                 f"Natural Language :: {cfg['language']}"] +
                [f'Programming Language :: Python :: {v}' for v in py_versions],
    packages=setuptools.find_namespace_packages(include=[cfg['lib_path'], cfg['lib_path']+'.*'], exclude=['*.__pycache__']),
    include_package_data=True, zip_safe=False, python_requires=f'>={min_python}',
    install_requires=requirements, extras_require={'dev': dev_requirements, 'explore': explore_requirements},
    entry_points={'console_scripts': scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]})
