"""The shipped study files (data only).

The build maps this folder into the package as ``neuromosaic_optuna.studies``; the
``neuromosaic`` command reads it with ``importlib.resources``.
"""
