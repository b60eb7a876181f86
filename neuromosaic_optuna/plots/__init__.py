"""Plotly figures of architecture searches: the seed's case-study plots and the architecture map.

Every figure comes in two steps, as in :mod:`optuna.visualization`: ``<name>_info(study, ...)``
computes a :class:`~typing.NamedTuple` of plain arrays and strings (no plotly involved, so it is
tested on its own), and ``plot_<name>(study_or_studies, ...)`` only draws it.

============================  ================================================================
figure                        what it shows
============================  ================================================================
:func:`plot_accuracy_flops`   case 1: top-1 accuracy (%) against GFLOPs, Pareto front
                              highlighted, the architecture on hover; several studies overlay
:func:`plot_efficiency`       case 2: params, activation memory, latency and throughput against
                              accuracy, and the seed's three efficiency metrics
:func:`plot_pareto_surface`   case 4: accuracy, latency and memory in 3D, colored by Pareto
                              rank, front surface, knee and operating point marked, infeasible
                              trials as crosses
:func:`plot_robustness`       case 5: clean against robust accuracy, and accuracy per
                              perturbation and severity
:func:`plot_diversity`        mean pairwise distance of the proposed architectures per NSGA-II
                              generation ("monitor diversity")
:func:`plot_hypervolume`      Optuna's hypervolume history with this package's reference point
:func:`plot_architecture_map` the "sphere metaphor": every architecture on the unit sphere,
                              neighbours in the search space close on the sphere
============================  ================================================================

One private module per figure family (``_accuracy_flops``, ``_efficiency``,
``_pareto_surface``, ``_robustness``, ``_progress``, ``_diversity``, ``_hypervolume``,
``_architecture_map`` with its sphere-embedding math in ``_sphere``, ``_figures``), re-exported
here. Case 3 (search progress from scratch and with transfer, :func:`search_progress` and
:func:`plot_search_progress`) is in ``_progress``. Optuna's own plots are used where they do the job
(:func:`plot_hypervolume`, and the parameter importances of :func:`study_figures`).

What the figures read from a trial (written by :class:`neuromosaic_optuna.Objective`):

* objective values from ``trial.values`` (names from ``study.metric_names``), every other
  metric from the user attribute ``metrics`` (metric name -> float, units of
  :mod:`neuromosaic_optuna.metrics`: accuracies are fractions, ``flops`` are MACs,
  ``latency`` seconds, ``memory`` bytes);
* the user attributes ``architecture`` (dict, shown on hover) and ``status`` (``"ok"``,
  ``"rejected"``, ...); constraints from ``trial.constraints``;
* robustness: the summary metrics (``clean_accuracy``, ``noise_accuracy``,
  ``corrupt_accuracy``, ``adversarial_accuracy``) in ``metrics``, and the user attribute
  ``robustness = {"metrics": {...}, "details": {"noise@0.1": acc, "gaussian@3": acc,
  "fgsm@0.0313725": acc, "corrupt:gaussian": mean, ...}}``: ``<perturbation>@<level>`` keys are
  single perturbations, keys with ``:`` are means and are not drawn again;
* the NSGA-II generation from the trial system attribute ``<SamplerClass>:generation``.

Pareto ranks, fronts, knees, operating points and hypervolumes all come from
:mod:`neuromosaic_optuna.pareto`, so every figure agrees with ``neuromosaic pareto``.
"""

from neuromosaic_optuna.plots._accuracy_flops import (
    AccuracyFlopsInfo,
    accuracy_flops_info,
    plot_accuracy_flops,
)
from neuromosaic_optuna.plots._architecture_map import (
    ArchitectureMapInfo,
    Preservation,
    architecture_map_info,
    neighbourhood_preservation,
    plot_architecture_map,
)
from neuromosaic_optuna.plots._common import StudyOrStudies, describe_architecture
from neuromosaic_optuna.plots._diversity import DiversityInfo, diversity_info, plot_diversity
from neuromosaic_optuna.plots._efficiency import (
    EFFICIENCY_METRICS,
    EfficiencyInfo,
    efficiency_info,
    plot_efficiency,
)
from neuromosaic_optuna.plots._figures import available_figures, study_figures
from neuromosaic_optuna.plots._hypervolume import plot_hypervolume, reference_point_of
from neuromosaic_optuna.plots._pareto_surface import (
    SURFACE_METRICS,
    ParetoSurfaceInfo,
    pareto_surface_info,
    plot_pareto_surface,
)
from neuromosaic_optuna.plots._progress import (
    ProgressCurve,
    SearchProgress,
    plot_search_progress,
    search_progress,
)
from neuromosaic_optuna.plots._robustness import (
    ROBUST_METRICS,
    RobustnessInfo,
    plot_robustness,
    robustness_info,
)
from neuromosaic_optuna.units import format_metric

__all__ = [
    "EFFICIENCY_METRICS",
    "ROBUST_METRICS",
    "SURFACE_METRICS",
    "AccuracyFlopsInfo",
    "ArchitectureMapInfo",
    "DiversityInfo",
    "EfficiencyInfo",
    "ParetoSurfaceInfo",
    "Preservation",
    "ProgressCurve",
    "RobustnessInfo",
    "SearchProgress",
    "StudyOrStudies",
    "accuracy_flops_info",
    "architecture_map_info",
    "available_figures",
    "describe_architecture",
    "diversity_info",
    "efficiency_info",
    "format_metric",
    "neighbourhood_preservation",
    "pareto_surface_info",
    "plot_accuracy_flops",
    "plot_architecture_map",
    "plot_diversity",
    "plot_efficiency",
    "plot_hypervolume",
    "plot_pareto_surface",
    "plot_robustness",
    "plot_search_progress",
    "reference_point_of",
    "robustness_info",
    "search_progress",
    "study_figures",
]
