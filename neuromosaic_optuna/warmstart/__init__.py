"""Meta-learning warm starts: transfer from prior studies as enqueued trials.

:func:`warm_start` chooses trials of one or more *source* studies, maps their params into the
*target* study's search space and enqueues them there (``study.enqueue_trial``) with their
provenance. One private module per job: ``_sources`` (what a source may be), ``_selection``
(which trials), ``_claim`` (the cross-process claim), ``_enqueue`` (deduplicate, check costs,
enqueue, report) and ``_profile`` (:func:`cost_profiler`).

The seed's transfer experiment (:func:`neuromosaic_optuna.transfer.run_transfer`) lives in
:mod:`neuromosaic_optuna.transfer`, and the search-progress comparison
(:func:`neuromosaic_optuna.plots.search_progress`, :func:`~neuromosaic_optuna.plots.
plot_search_progress`) under :mod:`neuromosaic_optuna.plots`; their old names here still work
for one release and warn (:class:`DeprecationWarning`).

Selection (``selection=``), per source, among its COMPLETE trials with status ``ok``:

* ``"pareto"``: by constrained Pareto rank over the source's objectives (or ``metrics``), then
  by crowding distance (spread along the front first);
* ``"best"``: by the first objective (or ``metrics[0]``), feasible trials first;
* ``"diverse"``: greedy max-min: the best trial, then repeatedly the trial farthest (in the
  target space) from those already chosen, among the ``3 * top_k`` best candidates;
* ``"surrogate"``: a random forest fitted to the source trials (params mapped into the target
  space) ranks every cell of the target space (all of it when it has at most 20,000 cells,
  else 4,096 random points plus the source trials) and the best *predicted* ones are
  enqueued, whether or not the source evaluated them. On NAS-Bench-201 CIFAR-10 ->
  ImageNet16-120 this beats enqueueing the source's best trials (``benchmarks/warmstart.py``);
  with fewer than 5 usable source trials it falls back to ``"pareto"``;
* ``"predictor"``: a :class:`~neuromosaic_optuna.predictor.PerformancePredictor` (random
  forest with its trees' spread) on the cell encoding, fitted on the source trials, screens
  the target space as ``"surrogate"`` does down to 40 cells; ``proxy_fn`` (e.g.
  :meth:`~neuromosaic_optuna.objective.Objective.proxy_scores`, what ``run_transfer`` passes
  when the study file sets ``proxies``) scores those cells and the source trials (a source
  trial's stored proxies are reused), a second predictor on encoding + proxies is fitted,
  and the shortlist is enqueued in the order of the two predictors' blended mean. It never
  reads a value the source did not measure. Without ``proxy_fn`` it ranks on the encoding
  alone, and with fewer than 5 usable source trials it falls back to ``"pareto"``; the
  report (:meth:`WarmStartReport.summary`) says which.

Mapping (:meth:`SearchSpace.map_params`): numbers are clipped and snapped to the target's
range and step, categoricals kept only if still a choice, params the target lacks dropped,
params the source lacks left to the sampler. Candidates are then deduplicated (after mapping,
also against every trial the target already has) and, when ``constraints`` and a
``profile_fn`` are given, profiled: those violating a cost constraint are skipped and counted.
The next candidates take their places, so up to ``top_k`` trials per source are enqueued.

Concurrency and idempotence: before enqueueing from a source, a process claims the pair
(target, source) by creating a *marker study* named
``<target>::warm_start::<source key>-<target study id>`` in the target's storage (an empty
study; it shows in study lists and keeps the claim). Study names are unique in every
Optuna storage (RDB: a unique index; journal: the log's order), so exactly one process wins;
the others wait until the winner marks the claim done (marker user attribute ``state``) and
enqueue nothing. Running the warm start again finds the marker and enqueues nothing. The
winner also records a summary in the target's user attribute ``warm_start:<key>``. If the
winner fails, it deletes its marker, so a later run retries (and skips what was enqueued).
Enqueued trials are WAITING trials: call :func:`~neuromosaic_optuna.study.open_slots` *after*
the warm start, and they take the place of slots, so the study still ends with exactly its
``max_trials`` finished trials.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from neuromosaic_optuna.warmstart._enqueue import WarmStartReport, warm_start
from neuromosaic_optuna.warmstart._profile import cost_profiler
from neuromosaic_optuna.warmstart._selection import SELECTIONS
from neuromosaic_optuna.warmstart._sources import SourceLike

__all__ = [
    "SELECTIONS",
    "SourceLike",
    "WarmStartReport",
    "cost_profiler",
    "warm_start",
]

#: Names that moved out, for one release: old name -> new module.
_MOVED = {
    "TransferResult": "neuromosaic_optuna.transfer",
    "run_transfer": "neuromosaic_optuna.transfer",
    "source_config": "neuromosaic_optuna.transfer",
    "source_study_name": "neuromosaic_optuna.transfer",
    "transfer_budgets": "neuromosaic_optuna.transfer",
    "ProgressCurve": "neuromosaic_optuna.plots",
    "SearchProgress": "neuromosaic_optuna.plots",
    "plot_search_progress": "neuromosaic_optuna.plots",
    "search_progress": "neuromosaic_optuna.plots",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        new = _MOVED[name]
        warnings.warn(f"neuromosaic_optuna.warmstart.{name} moved; import it as "
                      f"`from {new} import {name}` (the old path goes in the next release)",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
