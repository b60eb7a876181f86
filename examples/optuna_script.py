"""A plain Optuna script using neuromosaic_optuna's pieces, without the CLI.

Run from the repository root: ``python examples/optuna_script.py``.
"""

from __future__ import annotations

import optuna

import neuromosaic_optuna as nm
from neuromosaic_optuna.pruners import epoch_hook_for


def _study(config: nm.StudyConfig) -> tuple[optuna.Study, nm.Objective]:
    study = optuna.create_study(
        directions=config.directions,          # ["maximize", "minimize"]: accuracy, flops
        sampler=nm.make_sampler(config),       # NSGA-II for two or more objectives
        pruner=nm.make_pruner(config),         # works in multi-objective studies too
    )
    study.set_metric_names(config.metric_names)
    objective = nm.Objective(config)           # trial -> [accuracy, flops], metrics stored
    objective.epoch_hooks.append(epoch_hook_for(config, study))  # per-epoch pruning
    return study, objective


def main(n_trials: int = 2, budget: str = "smoke") -> optuna.Study:
    config = nm.load_study_file("studies/quickstart.toml", budget=budget)
    source, objective = _study(config)
    source.optimize(objective, n_trials=n_trials)
    for trial in source.best_trials:
        metrics = trial.user_attrs["metrics"]
        print(f"trial {trial.number}: accuracy {metrics['accuracy']:.3f}, "
              f"{metrics['flops'] / 1e6:.2f} MMACs, {metrics['params'] / 1e3:.1f}K params")

    # Warm start: a second study begins with the first one's Pareto-optimal architectures.
    target, objective = _study(config)
    report = nm.warm_start(target, source, space=objective.space, top_k=1)
    print(report.summary())
    target.optimize(objective, n_trials=1)     # runs the enqueued architecture first
    return target


if __name__ == "__main__":
    main()
