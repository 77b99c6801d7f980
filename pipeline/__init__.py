"""Stage scripts: thin command-line programs over the srnas library.

Every input and output is an explicit argument; the same command lines appear in the
Snakefile and in dvc.yaml (both generated from :mod:`pipeline.stages`).
"""
