"""Benchmarks of the platform: labeling load, imports, training, serving, ranking, monitoring.

Each module is a script, run from the repository root as a module:

    python -m bench.labeling_load --help
    python -m bench.fine_tune --data ../shared/data/clothing_reviews --threads 2

What the scripts share (paths, the Django bootstrap, a throwaway database, gunicorn, process
helpers) is in bench/support.py. Results and the commands that measured them are in
docs/benchmarks.md and docs/bench/. Nothing in annotator/ or trainer/ imports bench.
"""
