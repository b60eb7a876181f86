"""Every reach into Optuna's private modules, in one place.

Each reach is guarded: when an Optuna release moves or renames what we use, the import of the
module that needs it fails at once with the attribute's full name, the Optuna version the
reach was written against and the installed one, instead of a silent change of behaviour.
Sections are headed by the feature that needs them, so they can be merged by concatenation.
"""

from __future__ import annotations

# =========================================================================== journal files
# Crash-safe journal files with our own heartbeat (neuromosaic_optuna.storage): Optuna's
# JournalStorage has no heartbeat, but Optuna's trial loop (``fail_stale_trials`` before each
# trial, a heartbeat thread while it runs) serves any storage that also subclasses the private
# ``BaseHeartbeat``, as ``RDBStorage`` does.

#: The Optuna version the "journal files" reaches were written and tested against.
JOURNAL_WRITTEN_AGAINST = "5.0.0"


def _journal_reach(module: str, attribute: str) -> object:
    """``module.attribute``, or an ImportError naming it and both Optuna versions."""
    import importlib

    import optuna

    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        raise ImportError(
            f"neuromosaic_optuna needs {module}.{attribute} (written against optuna "
            f"{JOURNAL_WRITTEN_AGAINST}); optuna {optuna.__version__} has changed it: "
            "install optuna 5.0 or update neuromosaic_optuna/_compat.py") from None


def heartbeat_base() -> type:
    """Optuna's private ``BaseHeartbeat`` (``optuna.storages._heartbeat``): a storage that
    subclasses it and returns an interval from ``get_heartbeat_interval()`` gets Optuna's
    heartbeat thread and stale-trial check in ``Study.optimize``.

    Example:
        >>> heartbeat_base().__name__
        'BaseHeartbeat'
    """
    base = _journal_reach("optuna.storages._heartbeat", "BaseHeartbeat")
    assert isinstance(base, type)
    for method in ("record_heartbeat", "_get_stale_trial_ids", "get_heartbeat_interval",
                   "get_heartbeat_stale_trial_callback"):
        if not hasattr(base, method):
            raise ImportError(
                f"neuromosaic_optuna needs optuna.storages._heartbeat.BaseHeartbeat.{method} "
                f"(written against optuna {JOURNAL_WRITTEN_AGAINST}); the installed optuna "
                "has changed it")
    return base
