"""The embedded synthetic hand world: an articulated hand, a camera, a batched renderer and
writers of three products in the real data sets' layouts (see ``products.py``).

``products.generate(kind, out, n, res, seed, eval_n=None)`` writes a product;
``preview.preview(path, ...)`` writes a contact sheet of samples with their keypoints. This
package module imports nothing (``bench --help`` and config composition stay torch-free); the
generator's version is ``benchmarks.config.SYNTH_VERSION``.
"""
