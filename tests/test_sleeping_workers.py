"""Eight worker processes whose trials sleep (0.2 s), on every storage kind: the study ends
with exactly the requested total, every slot is claimed by one worker only, and each trial
stores its timeline. The trials only sleep, so this tests the claim protocol of
:func:`neuromosaic_optuna.study.work`, not training."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from neuromosaic_optuna.record import timeline_of
from neuromosaic_optuna.storage import make_storage
from neuromosaic_optuna.study import count_finished, open_slots, work

WORKERS = 8
TARGET = 32
SLEEP = 0.2


def _sleepy(trial: optuna.trial.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("worker", os.getpid())
    time.sleep(SLEEP)
    return x


def _worker(url: str, name: str, ran: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=make_storage(url, heartbeat_interval=5))
    numbers: list[int] = []
    work(study, _sleepy, callbacks=[lambda _, trial: numbers.append(trial.number)])
    ran.put((os.getpid(), numbers))


def _run(url: str) -> None:
    storage = make_storage(url, heartbeat_interval=5)
    study = optuna.create_study(storage=storage, study_name="sleepers",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    assert open_slots(study, TARGET) == TARGET
    ctx = multiprocessing.get_context("spawn")
    ran = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, "sleepers", ran)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    results = [ran.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claimed = [n for _, numbers in results for n in numbers]
    assert len(claimed) == len(set(claimed)) == TARGET  # every slot once, by one worker
    loaded = optuna.load_study(study_name="sleepers", storage=make_storage(url))
    assert count_finished(loaded) == TARGET
    assert Counter(t.state for t in loaded.trials) == {TrialState.COMPLETE: TARGET}
    assert sorted(claimed) == sorted(t.number for t in loaded.trials)
    by_pid = {pid: set(numbers) for pid, numbers in results}
    for trial in loaded.trials:  # the worker that says it ran the trial is the one that did
        assert trial.number in by_pid[trial.user_attrs["worker"]]
        timeline = timeline_of(trial)
        assert {"queue_wait", "claim", "sample", "tell"} <= set(timeline), timeline
        assert all(v >= 0 for v in timeline.values())
        running = (trial.datetime_complete - trial.datetime_start).total_seconds()
        assert running >= SLEEP and timeline["sample"] + timeline["tell"] <= running + 0.01


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_eight_sleeping_workers_on_a_file_storage(kind: str, tmp_path: Path) -> None:
    _run(f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else str(tmp_path / "s.log"))


@pytest.mark.postgres
def test_eight_sleeping_workers_on_postgres(postgresql_db_url: str) -> None:
    _run(postgresql_db_url)


def test_a_worker_without_rivals_claims_in_queue_order_and_a_loser_spreads() -> None:
    from neuromosaic_optuna import _compat

    study = optuna.create_study()
    for _ in range(20):
        study.enqueue_trial({})
    claims: list[tuple[float, float]] = []
    with _compat.time_claims(study, lambda start, end: claims.append((start, end)), seed=3):
        assert [study.ask().number for _ in range(3)] == [0, 1, 2]  # the same seed, same trials
        storage = _compat.storage_of(study)
        rival = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))[0]
        # a rival claims trial 3 between this worker's read of the queue and its claim
        real = storage.get_all_trials

        def stale_read(*args: object, **kwargs: object) -> list[optuna.trial.FrozenTrial]:
            trials = real(*args, **kwargs)  # type: ignore[arg-type]
            storage.set_trial_state_values(_compat.trial_id(rival), state=TrialState.RUNNING)
            return trials

        storage.get_all_trials = stale_read  # type: ignore[method-assign]
        number = study.ask().number
        del storage.get_all_trials
        assert number not in (0, 1, 2, rival.number) and number < rival.number + 1 + 16
        rest = [study.ask().number for _ in range(20 - 5)]
    assert sorted([0, 1, 2, rival.number, number, *rest]) == list(range(20))  # each once
    assert len(claims) == 19 and all(end >= start for start, end in claims)  # rival: not ours
