"""`make demo`: the package's main job on built-in data (scikit-learn's digits), on CPU, no downloads.

``python -m demo.run`` (what ``make demo`` runs) trains every model with the recipes in ``training/``, run with their
command lines as a user runs them (:func:`demo.recipes.run_recipe`), and judges them with the package's metrics.
"""
