"""The per-trial timeline: every phase a worker goes through is stored on the trial and read
back with :func:`neuromosaic_optuna.record.timeline_of`."""

from __future__ import annotations

import time
from pathlib import Path

import optuna

import neuromosaic_optuna as nm
from neuromosaic_optuna.config import load_config
from neuromosaic_optuna.record import PHASES, timeline_of, timeline_summary

STUDY = {
    "experiment": {"name": "timeline", "architecture_type": "conv_net",
                   "objectives": ["accuracy", "latency"], "dataset": "digits",
                   "max_trials": 3,
                   "search_space": {"width_multiplier": [0.25, 0.5], "se_ratio": [0.0, 0.25]}},
    "defaults": {"resolution": 16, "epochs": 1, "batch_size": 64, "max_train_samples": 256,
                 "model_options": {"convnet_stages": ["ds_r1_k3_s1_e1_c16",
                                                      "ir_r1_k3_s2_e6_c24"]}},
}


def test_run_stores_a_timeline_that_reads_back_with_sane_values(tmp_path: Path) -> None:
    config = load_config(STUDY)
    started = time.time()
    study = nm.run_study(config, storage=f"sqlite:///{tmp_path / 't.db'}")
    wall = time.time() - started
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 3
    total = 0.0
    for trial in trials:
        timeline = timeline_of(trial)
        assert set(timeline) == set(PHASES), timeline  # a trained trial goes through all
        assert all(seconds >= 0 for seconds in timeline.values()), timeline
        assert timeline["train"] > 0 and timeline["build"] > 0 and timeline["profile"] > 0
        # claim start .. completion bounds every phase but the queue wait; the slot turns
        # RUNNING (datetime_start) inside the claim
        assert trial.datetime_start is not None and trial.datetime_complete is not None
        running = (trial.datetime_complete - trial.datetime_start).total_seconds()
        assert sum(timeline.values()) - timeline["queue_wait"] - timeline["claim"] \
            <= running + 0.01, (timeline, running)
        total += sum(timeline.values())
    assert total <= wall
    summary = timeline_summary(trials)
    assert list(summary) == list(PHASES)
    assert all(s["n"] == 3 and 0 <= s["median_ms"] <= s["p90_ms"] for s in summary.values())


def test_an_objective_outside_a_worker_loop_stores_no_timeline() -> None:
    config = load_config({**STUDY, "experiment": {**STUDY["experiment"],
                                                     "objectives": ["flops"]}})
    study = nm.create_study(config)
    study.optimize(nm.Objective(config, timing=False), n_trials=1)
    assert timeline_of(study.trials[0]) == {}
