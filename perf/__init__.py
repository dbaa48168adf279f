"""Performance scripts: where the time goes, against the bare model and a peer pipeline.

``python -m perf [--quick] [--out results/perf]`` runs every measurement side by
side and writes ``<out>/summary.json`` (``perf.suite``); the modules
``perf.render`` and ``perf.report_speed`` also run on their own.
These are scripts that time things, not tests: nothing here asserts a speed.
"""
