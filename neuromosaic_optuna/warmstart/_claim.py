"""The cross-process claim: a marker study per (target, source) pair, created once."""

from __future__ import annotations

import time

import optuna
from optuna.storages import BaseStorage

from neuromosaic_optuna import _compat
from neuromosaic_optuna.warmstart._sources import _Source


def _marker_name(target: optuna.Study, source: _Source) -> str:
    return f"{target.study_name}::warm_start::{source.key}-{_compat.study_id(target)}"


def _wait_until_done(storage: BaseStorage, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            study_id = storage.get_study_id_from_name(marker)
            if storage.get_study_user_attrs(study_id).get("state") == "done":
                return
        except KeyError:  # the winner failed and released its claim
            raise RuntimeError(f"the process warm-starting from this source failed (marker "
                               f"study {marker!r} was removed); run the warm start again") \
                from None
        if time.monotonic() >= deadline:
            raise RuntimeError(f"another process claimed the warm start (marker study "
                               f"{marker!r}) and has not finished after {timeout:.0f} s; if it "
                               "died, delete that study (`optuna delete-study --study-name "
                               "...`) and run again")
        time.sleep(0.05)
