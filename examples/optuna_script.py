"""A plain Optuna script using neuromosaic_optuna's pieces, without the CLI.

Run from the repository root: ``python examples/optuna_script.py``.
"""

from __future__ import annotations

import optuna

import neuromosaic_optuna as nm


def main(n_trials: int = 2, budget: str = "smoke") -> optuna.Study:
    config = nm.load_study_file("studies/quickstart.toml", budget=budget)
    study = optuna.create_study(
        directions=config.directions,          # ["maximize", "minimize"]: accuracy, flops
        sampler=nm.make_sampler(config),       # NSGA-II for two or more objectives
        pruner=nm.make_pruner(config),
    )
    study.set_metric_names(config.metric_names)
    study.optimize(nm.Objective(config), n_trials=n_trials)
    for trial in study.best_trials:
        metrics = trial.user_attrs["metrics"]
        print(f"trial {trial.number}: accuracy {metrics['accuracy']:.3f}, "
              f"{metrics['flops'] / 1e6:.2f} MMACs, {metrics['params'] / 1e3:.1f}K params")
    return study


if __name__ == "__main__":
    main()
