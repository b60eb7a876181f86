"""Write the five case-study notebooks of ``notebooks/`` from this script.

The notebooks are generated so that they can be reviewed as code and stay in step with the
package: edit the cells here, then run ``python notebooks/_build.py`` (``--check`` exits 1
when a committed notebook differs from what this script writes). The files are written
without outputs; ``tests/test_notebooks.py`` executes them with the ``smoke`` budget.

Every notebook starts the same way: what the design document's case study asks, the
``BUDGET`` cell (``"smoke"`` by default, ``"cpu"`` for the real CPU run, ``"full"`` for the
seed's datasets on a GPU machine), then the study file run through the Python API in memory,
the seed's analysis with this package's figures, and what a user decides from them.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

#: The budget cell: the one line a user edits (tests check it is there, unchanged).
BUDGET_CELL = 'BUDGET = "smoke"  # switch to "cpu" for the full CPU run'

_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                   "name": "python3"},
    "language_info": {"name": "python", "pygments_lexer": "ipython3"},
}

# Shared cells --------------------------------------------------------------------------

_BUDGET_MD = """\
## Budget

`smoke` (the default here) runs a handful of tiny trials in well under a minute: it shows the
mechanics and every figure, but its models are barely trained, so **do not read conclusions
from its numbers**. `cpu` is the study file's real run for 2 CPU cores (a few minutes);
`full` is the seed's own setting (its dataset and `max_trials`) for a GPU machine with the
data on disk: `neuromosaic run {study} --budget full` says which data it needs and where it
looks."""

_SETUP = """\
from pathlib import Path

import optuna
from IPython.display import Markdown, display

import neuromosaic_optuna as nm
from neuromosaic_optuna import plots
from neuromosaic_optuna.plots import format_metric
from neuromosaic_optuna.study import count_finished

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The repository root: the notebooks run from notebooks/, but any folder inside works.
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents)
            if (p / "studies" / "{study_file}").is_file())
# None keeps the study in memory; a URL such as "sqlite:///{stem}.db" keeps it for
# optuna-dashboard and `neuromosaic report` (running again then resumes the study).
STORAGE = None


def show_table(header, rows):
    \"\"\"Display rows of cells as a Markdown table.\"\"\"
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    display(Markdown("\\n".join(lines)))"""

_RUN = """\
config = nm.load_study_file(ROOT / "studies" / "{study_file}", budget=BUDGET)
print(f"{config.name} [{config.budget}]: {config.architecture_type} on {config.dataset}, "
      f"{config.max_trials} trials x {config.epochs} epoch(s), objectives "
      f"{config.metric_names} ({', '.join(config.directions)})")
print("constraints:", {c.name: c.raw for c in config.constraints} or "none")
study = nm.run_study(config, storage=STORAGE)
statuses = {}
for t in study.get_trials(deepcopy=False):
    status = t.user_attrs.get("status", t.state.name.lower())
    statuses[status] = statuses.get(status, 0) + 1
print(f"{count_finished(study)} finished trials ({study.sampler.__class__.__name__}); "
      f"by status: {statuses}")"""

_PARETO_TABLE = """\
info = nm.pareto_info(study)
print(f"front: trials {info.front_trials}; knee: trial {info.knee_trial}; "
      f"hypervolume {info.hypervolume:.6g} (reference point "
      + ", ".join(f"{n} {format_metric(n, v)}"
                  for n, v in zip(info.metric_names, info.reference_point))
      + ")")
show_table(
    ["trial", "Pareto rank", "feasible", *info.metric_names, "note"],
    [[int(n), int(r), "yes" if f else "no", *(format_metric(m, v)
                                              for m, v in zip(info.metric_names, row)),
      "knee" if n == info.knee_trial else ("front" if i in info.front else "")]
     for i, (n, r, f, row) in enumerate(zip(info.trial_numbers, info.ranks, info.feasible,
                                            info.values))])"""


def _md(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def _join(*pieces: str) -> str:
    """Code pieces, each dedented on its own, as one cell source."""
    return "\n".join(_md(p) for p in pieces)


def _cells(stem: str, study_file: str, parts: Sequence[tuple[str, str]]
           ) -> list[nbformat.NotebookNode]:
    """Notebook cells from ``("md" | "code", source)`` pairs, with stable cell ids."""
    cells = []
    for i, (kind, source) in enumerate(parts):
        text = _md(source).replace("{study_file}", study_file).replace("{stem}", stem)
        cell = new_markdown_cell(text) if kind == "md" else new_code_cell(text)
        cell["id"] = f"{stem.split('_', 1)[0]}-{i:02d}"
        cells.append(cell)
    return cells


def _common(intro: str, study_file: str) -> list[tuple[str, str]]:
    """Intro, budget and setup cells shared by the notebooks that run one study."""
    return [
        ("md", intro),
        ("md", _BUDGET_MD.format(study=f"studies/{study_file}")),
        ("code", BUDGET_CELL),
        ("code", _SETUP),
    ]


# 01 -------------------------------------------------------------------------------------

_VIT = [
    *_common("""\
    # Case study 1: Vision Transformer search

    The design document searches Vision Transformers (`experiment_config`: 4-12 layers, 4-16
    heads, MLP ratio 2-4, patch size 8/16/32) for the best **top-1 accuracy per FLOP** on
    ImageNet in 100 trials, and asks what the trade-off looks like: the depth-width balance,
    the impact of the patch size, how attention heads scale, and what accuracy each extra
    GFLOP buys. `studies/vit_search.toml` holds that dict verbatim; its `cpu` and `smoke`
    budgets train torchvision ViTs on scikit-learn's handwritten digits at 32x32 with 4-wide
    heads (the seed's 64-wide heads at 224x224 are the `full` budget).

    **What you decide here:** which ViT configuration to train at full scale for your compute
    budget, and whether a larger model is worth its FLOPs.""", "vit_search.toml"),
    ("md", """\
    ## Run the study

    NSGA-II searches accuracy (maximize) against FLOPs (minimize, counted as
    multiply-accumulates with attention included). Every trial is built, profiled, then
    trained; the measured metrics are stored on the trial (user attribute `metrics`)."""),
    ("code", _RUN),
    ("md", """\
    ## The trials

    One row per trial: the searched params, then what was measured. The hidden width is
    `num_heads x head_dim`; `tokens` is the number of patches the image is cut into."""),
    ("code", """\
    rows = []
    for t in study.get_trials(deepcopy=False):
        m = t.user_attrs.get("metrics", {})
        a = t.user_attrs.get("architecture", {})
        rows.append([t.number, t.state.name.lower(), t.params.get("num_layers"),
                     t.params.get("num_heads"), f"{t.params.get('mlp_ratio', float('nan')):.2f}",
                     t.params.get("patch_size"), a.get("hidden_dim", "-"), a.get("tokens", "-"),
                     *(format_metric(k, m.get(k)) for k in ("accuracy", "flops", "params",
                                                            "latency"))])
    show_table(["trial", "state", "layers", "heads", "mlp ratio", "patch", "width", "tokens",
                "accuracy", "FLOPs", "params", "latency"], rows)"""),
    ("md", """\
    ## Accuracy vs FLOPs

    The seed's figure: top-1 accuracy (%) against GFLOPs, one point per trial. The red step
    line is the Pareto front (no other trial is both more accurate and cheaper), the star its
    knee (the point where the front bends: beyond it, accuracy gets expensive). Hover a point
    for its architecture. Read it from left to right: how much accuracy each step up in
    compute buys, and where that stops paying."""),
    ("code", "plots.plot_accuracy_flops(study)"),
    ("md", """\
    ## The front, its knee and hypervolume

    The same front as a table (`nm.pareto_info`: ranks by constrained non-domination, rank 0
    is the front). The hypervolume is the area dominated by the front up to the reference
    point; it grows as the search finds better trade-offs and is what the search maximizes.
    Trials stopped early by the pruner have no final values and are not listed."""),
    ("code", _PARETO_TABLE),
    ("md", """\
    ## Architecture patterns

    The seed's questions about the architecture: depth vs width, patch size, attention heads.
    Optuna's slice plot shows the accuracy of every trial against each searched param; the
    table groups trials by patch size (a smaller patch means more tokens, so quadratically
    more attention FLOPs)."""),
    ("code", """\
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = optuna.visualization.plot_slice(study, target=lambda t: t.values[0],
                                              target_name="accuracy")
    fig.update_yaxes(tickformat=".0%")
    fig"""),
    ("code", """\
    import numpy as np

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    groups = {}
    for t in done:
        groups.setdefault(t.params["patch_size"], []).append(t.user_attrs["metrics"])
    show_table(["patch size", "trials", "best accuracy", "median FLOPs", "median params"],
               [[p, len(ms), format_metric("accuracy", max(m["accuracy"] for m in ms)),
                 format_metric("flops", float(np.median([m["flops"] for m in ms]))),
                 format_metric("params", float(np.median([m["params"] for m in ms])))]
                for p, ms in sorted(groups.items())])"""),
    ("md", """\
    ## The architecture space as a sphere

    Every trial on a unit sphere, placed so that architectures with similar params sit close
    together (the design document's "sphere metaphor"); color is accuracy, size is FLOPs, the
    ringed point is the knee. Dark shading marks explored regions: a cluster means the search
    has focused there, light regions were never tried."""),
    ("code", "plots.plot_architecture_map(study)"),
    ("md", """\
    ## Hypervolume history

    The hypervolume after each trial (Optuna's figure, with this package's reference point).
    A curve that still rises at the end says more trials would still pay; a flat tail says the
    search has converged for this budget."""),
    ("code", "plots.plot_hypervolume(study)"),
    ("md", """\
    ## What to decide

    * **Pick the model to scale up**: the knee is the default choice; move right along the
      front only if the extra accuracy is worth the extra GFLOPs to you.
    * **Narrow the space**: params whose slice shows no effect can be fixed; a patch size that
      never reaches the front can be dropped before the `full` run.
    * **Budget**: if the hypervolume still rises, raise `max_trials` (or run `cpu`/`full`)
      before trusting the front. With `smoke` every model is barely trained: rerun with
      `BUDGET = "cpu"` before reading any trend."""),
]

# 02 -------------------------------------------------------------------------------------

_CONVNETS = [
    *_common("""\
    # Case study 2: Efficient ConvNets

    The design document scales an EfficientNet-style network (`efficient_net_space`: depth and
    width multipliers 0.5-2, input resolution 160-320, squeeze-excitation ratio 0-0.25) under
    two hard constraints, **at most 10M parameters and 100 ms latency**, and analyses the
    result through three efficiency metrics: `params_utilization = params / accuracy`,
    `memory_efficiency = activation_memory / throughput` and
    `speed_efficiency = latency * batch_size`. `studies/efficient_convnets.toml` holds the dict
    verbatim and optimizes accuracy, params and latency; its CPU budgets train on handwritten
    digits with the searched resolution scaled into the `max_resolution` cap.

    **What you decide here:** which scaling (depth, width, resolution) to use within the
    constraints, and which trial gives the most accuracy per parameter, byte and millisecond.""",
        "efficient_convnets.toml"),
    ("md", """\
    ## Run the study

    Costs (params, FLOPs, activation memory, latency) are measured *before* training: a
    network that breaks `max_params` or `max_latency` is recorded as *rejected* and never
    trained. Each constraint is stored with Optuna 5's `trial.set_constraint` as a signed
    margin (`<= 0` is feasible), so NSGA-II ranks violators below every feasible trial."""),
    ("code", _RUN),
    ("md", """\
    ## Feasibility

    Per trial: the two constrained costs, their margins (negative = room left) and whether
    the trial was trained. This is where a too-generous search space shows up: many
    rejections mean the space should shrink toward the constraints. Trials the pruner stopped
    early keep their measured costs but record no constraint values (`-`)."""),
    ("code", """\
    rows, checked, feasible = [], 0, 0
    for t in study.get_trials(deepcopy=False):
        m = t.user_attrs.get("metrics", {})
        margins = t.constraints
        verdict = "-"  # pruned or invalid: no constraint recorded
        if margins:
            ok = all(v <= 0 for v in margins.values())
            checked, feasible = checked + 1, feasible + ok
            verdict = "yes" if ok else "no"
        rows.append([t.number, t.user_attrs.get("status", t.state.name.lower()),
                     f"{t.params['depth_multiplier']:.2f}", f"{t.params['width_multiplier']:.2f}",
                     t.user_attrs.get("architecture", {}).get("input_resolution", "-"),
                     format_metric("params", m.get("params")),
                     format_metric("latency", m.get("latency")),
                     format_metric("params", margins.get("max_params")),
                     format_metric("latency", margins.get("max_latency")), verdict])
    show_table(["trial", "status", "depth x", "width x", "input px", "params", "latency",
                "params margin", "latency margin", "feasible"], rows)
    print(f"{feasible} of {checked} trials with recorded constraints satisfy max_params and "
          f"max_latency; {len(rows) - checked} pruned or invalid trial(s) have none")"""),
    ("md", """\
    ## The seed's efficiency metrics

    Read from each trial's `metrics` user attribute, where the objective stores them next to
    the raw costs. Lower is better for all three: fewer parameters per unit of accuracy, less
    activation memory per image per second of throughput, less time per batch (latency is
    measured at batch size `latency_batch_size`, 1 by default)."""),
    ("code", """\
    trained = [t for t in study.get_trials(deepcopy=False)
               if t.user_attrs.get("status") == "ok"]
    show_table(["trial", "accuracy", "params", "memory", "throughput",
                "params_utilization (params / accuracy)",
                "memory_efficiency (bytes / images per s)",
                "speed_efficiency (latency x batch)"],
               [[t.number, *(format_metric(k, t.user_attrs["metrics"][k])
                             for k in ("accuracy", "params", "memory", "throughput",
                                       "params_utilization", "memory_efficiency",
                                       "speed_efficiency"))]
                for t in trained])
    if trained:
        best = min(trained, key=lambda t: t.user_attrs["metrics"]["params_utilization"])
        per_unit = best.user_attrs["metrics"]["params_utilization"]
        print(f"most accuracy per parameter: trial {best.number} "
              f"({format_metric('params_utilization', per_unit)} params per unit of accuracy)")"""),
    ("md", """\
    ## Efficiency profile

    Accuracy against each cost (top row) and each efficiency metric (bottom row); red points
    are on the study's Pareto front. A front trial far to the left in every panel is cheap in
    every sense; one that is only cheap in params but slow shows that the parameter count
    alone is a poor proxy for speed."""),
    ("code", "plots.plot_efficiency(study)"),
    ("md", """\
    ## Scaling laws

    How the searched multipliers drive the costs: latency against params, colored by input
    resolution and sized by depth. Compound scaling shows up as points moving up and to the
    right together; resolution moves latency (and activation memory) without adding params."""),
    ("code", """\
    import plotly.graph_objects as go

    pts = [(t, t.user_attrs["metrics"]) for t in study.get_trials(deepcopy=False)
           if "latency" in t.user_attrs.get("metrics", {})]
    fig = go.Figure(go.Scatter(
        x=[m["params"] / 1e6 for _, m in pts], y=[m["latency"] * 1e3 for _, m in pts],
        mode="markers", text=[f"trial {t.number}" for t, _ in pts],
        marker={"color": [t.user_attrs["architecture"]["input_resolution"] for t, _ in pts],
                "size": [8 + 8 * t.params["depth_multiplier"] for t, _ in pts],
                "colorscale": "Viridis", "colorbar": {"title": {"text": "input px"}}}))
    fig.update_layout(title="Latency vs params (size = depth multiplier)",
                      xaxis_title="params (M)", yaxis_title="latency (ms)",
                      template="plotly_white")
    fig"""),
    ("md", """\
    ## The front

    Accuracy, params and latency together: the trials no other trial beats on all three, and
    the knee (the most balanced of them)."""),
    ("code", _PARETO_TABLE),
    ("md", """\
    ## What to decide

    * **Choose the scaling**: take the knee, or the front trial with the best efficiency
      metric for your deployment (params for storage, latency for speed).
    * **Tighten or loosen constraints**: if every trial has a large margin, the constraints
      are not binding and the search space can grow; many rejections mean it should shrink.
    * **Resolution**: when resolution buys accuracy but costs latency, decide it before depth
      and width. With `smoke`, accuracies are at chance level: rerun with `BUDGET = "cpu"`."""),
]

# 03 -------------------------------------------------------------------------------------

_TRANSFER = [
    ("md", """\
    # Case study 3: Meta-learning transfer

    The design document's `transfer_experiment` runs a *small* search on CIFAR-10, then uses
    what it learned to **warm-start a large search on ImageNet**, and compares the search
    progress "From Scratch" with "With Transfer": does transfer accelerate the search, improve
    the result, save resources? `studies/transfer_cifar10_to_imagenet.toml` holds the dict
    verbatim on NAS-Bench-201's tables (CIFAR-10-valid to ImageNet16-120): each trial looks up
    one recorded 200-epoch training run of a cell, so many searches run in seconds and the
    comparison can be repeated over several seeds.

    **What you decide here:** whether to warm-start an expensive search from a cheap one, and
    how many target trials that saves."""),
    ("md", _BUDGET_MD.format(study="studies/transfer_cifar10_to_imagenet.toml").replace(
        "its models are barely trained", "it runs few trials and seeds")),
    ("code", BUDGET_CELL),
    ("code", _join(_SETUP, """
    # Searches per arm: the comparison is repeated with these seeds.
    SEEDS = range(5) if BUDGET == "smoke" else range(10)""")),
    ("md", """\
    ## Run both arms

    For every seed: a plain target study from scratch (`nm.run_study`), and the seed's
    transfer experiment (`neuromosaic_optuna.transfer.run_transfer`): a source study on
    CIFAR-10 with the `small` budget, whose best candidates (chosen by a surrogate fitted on
    the source trials) are enqueued into the target study before it starts. Both target
    studies run the same number of trials with the same seed."""),
    ("code", """\
    from neuromosaic_optuna.transfer import run_transfer

    config = nm.load_study_file(ROOT / "studies" / "{study_file}", budget=BUDGET)
    print(f"target: {config.dataset}, {config.max_trials} trials; source: "
          f"{config.source_task['dataset']} ({config.source_task['budget']} budget)")
    scratch, transfer, reports = [], [], []
    for seed in SEEDS:
        seeded = config.with_overrides(seed=seed)
        scratch.append(nm.run_study(seeded, storage=STORAGE, study_name=f"scratch-{seed}"))
        result = run_transfer(seeded, storage=STORAGE, study_name=f"transfer-{seed}")
        transfer.append(result.target)
        reports.append(result.report)
    print(f"{len(SEEDS)} seeds; source studies of {count_finished(result.source)} trials; "
          f"{reports[-1].summary()}")"""),
    ("md", """\
    ## What the warm start enqueued

    The last seed's enqueued trials: the cell (one operation per edge of NAS-Bench-201's
    cell), the source accuracy the surrogate predicted, and what the target measured. Every
    enqueued trial keeps its provenance in the user attribute `warm_start`."""),
    ("code", """\
    target = transfer[-1]
    rows = []
    for t in target.get_trials(deepcopy=False):
        origin = t.user_attrs.get("warm_start")
        if origin:
            cell = " ".join(t.params[e] for e in sorted(t.params))
            rows.append([t.number, cell, format_metric("accuracy", origin["predicted_values"][0])
                         if origin.get("predicted_values") else "-",
                         format_metric("accuracy", t.values[0] if t.values else None)])
    show_table(["target trial", "cell (edges 1_0 .. 3_2)", "predicted on CIFAR-10",
                "measured on ImageNet16-120"], rows)"""),
    ("md", """\
    ## Search progress comparison

    The seed's figure: the best accuracy found so far against the number of target trials,
    for both arms. Lines are the median over seeds, bands the 25-75% range. Transfer pays when
    its curve starts higher and reaches the final level of the from-scratch arm in fewer
    trials."""),
    ("code", """\
    arms = {"From Scratch": scratch, "With Transfer": transfer}
    plots.plot_search_progress(arms, "accuracy")"""),
    ("md", """\
    ## Search acceleration and quality

    Per checkpoint, the median best accuracy of both arms and the regret against the best
    cell of the whole ImageNet16-120 table (run-averaged, so one lucky run can beat it);
    then, per seed, how many target trials the transfer arm needed to reach the final result
    of the from-scratch arm."""),
    ("code", """\
    import numpy as np
    from neuromosaic_optuna.models.nasbench201 import NASBench201Table
    from neuromosaic_optuna.plots import search_progress

    progress = search_progress({"From Scratch": scratch, "With Transfer": transfer}, "accuracy")
    best = NASBench201Table().best_mean_accuracy(config.dataset)
    checkpoints = [n for n in (5, 10, 20, 50, 100) if n <= config.max_trials]
    show_table(["arm", *(f"after {n} trials" for n in checkpoints)],
               [[label, *(f"{100 * curve.center[n - 1]:.2f}% (regret "
                          f"{100 * (best - curve.center[n - 1]):.2f} pp)" for n in checkpoints)]
                for label, curve in progress.curves.items()])

    goals = progress.curves["From Scratch"].runs[:, -1]
    needed = []
    for run, goal in zip(progress.curves["With Transfer"].runs, goals):
        reached = np.flatnonzero(run >= goal - 1e-12)
        needed.append(int(reached[0]) + 1 if reached.size else None)
    print(f"target trials the transfer arm needed to reach the from-scratch arm's final best "
          f"accuracy (same seed, {config.max_trials} trials each): "
          + ", ".join(str(n) if n else "not reached" for n in needed))
    reached_count = sum(n is not None for n in needed)
    if reached_count:
        print(f"reached in {reached_count} of {len(needed)} seeds; median trials when reached: "
              f"{np.median([n for n in needed if n]):g}")"""),
    ("md", """\
    ## Architecture motifs

    What knowledge was transferred: the operation the enqueued cells use most on each edge,
    over all seeds. A strong motif (e.g. 3x3 convolutions on the edges into the output node)
    is something the small source search learned that holds on the target task too."""),
    ("code", """\
    from collections import Counter

    picked = [e["params"] for r in reports for e in r.enqueued]
    rows = []
    for edge in sorted(picked[0]):
        op, count = Counter(p[edge] for p in picked).most_common(1)[0]
        rows.append([edge, op, f"{count / len(picked):.0%}"])
    show_table(["edge", "most enqueued op", "share"], rows)"""),
    ("md", """\
    ## What to decide

    * **Warm-start or not**: if the transfer arm reaches the from-scratch result in clearly
      fewer trials across seeds, warm-start the expensive search (`neuromosaic transfer
      --from SOURCE --to TARGET.toml`); if the curves overlap, the source task is not
      informative enough and its trials are better spent on the target.
    * **How much to spend on the source**: the source budget word (`small`, `medium`) trades
      source trials against the trials saved on the target.
    * With `smoke` the comparison uses few trials and seeds; `BUDGET = "cpu"` runs 100 target
      trials over more seeds (`benchmarks/warmstart.py` runs 40)."""),
]

# 04 -------------------------------------------------------------------------------------

_MULTI = [
    *_common("""\
    # Case study 4: Multi-objective search

    The design document's `multi_objective_config` trades **accuracy, latency and memory**
    (weights 1.0, -0.5, -0.3) under hard constraints (at most 5M parameters, at least 75%
    accuracy) with a Pareto search, and asks for the trade-off *surface*: the Pareto
    frontier, its knee points and the dominated solutions, then for decisions: operating
    points, resource constraints, performance bounds. `studies/multi_objective.toml` holds
    the dict verbatim (NSGA-II on the three objectives; the weights are informational) over
    an EfficientNet-style space.

    **What you decide here:** the operating point: which trial to deploy under your latency
    or memory bound, and what accuracy that bound costs.""", "multi_objective.toml"),
    ("md", """\
    ## Run the study

    `max_params` is checked before training (a violator is never trained); `min_accuracy`
    after. Both are Optuna 5 constraints, so NSGA-II prefers feasible trials and
    `study.best_trials` lists only feasible ones."""),
    ("code", _RUN),
    ("md", """\
    ## Pareto analysis

    Every trial with its constrained Pareto rank (infeasible trials rank below every feasible
    one, ordered by how much they violate, so rank 0 is the front whenever some trial is
    feasible), then the counts the seed asks for: front, dominated and infeasible solutions.
    Only COMPLETE trials have objective values: trials the pruner stopped early (status
    `pruned`) are not in the table; trials rejected before training are, as infeasible."""),
    ("code", _join(_PARETO_TABLE, """
    print(f"{len(info.front)} on the front, {int(info.dominated.sum())} dominated, "
          f"{int((~info.feasible).sum())} infeasible, of {len(info.trial_numbers)} trials")
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        broken = [k for k, v in t.constraints.items() if v > 0]
        if broken:
            print(f"  trial {t.number} violates {', '.join(broken)}")""")),
    ("md", """\
    ## The 3D Pareto surface

    The seed's figure: accuracy, latency and memory in 3D, colored by Pareto rank. Front
    trials are diamonds under a translucent surface through the front; the knee is ringed in
    black, the operating point's trial in green; infeasible trials are crosses (when no trial
    is feasible, every point is a cross and there is no front yet). Rotate it: a front that
    rises steeply along the latency axis means accuracy is cheap in time, a flat one that
    latency buys little."""),
    ("code", """\
    OPERATING_POINT = "latency<=20ms"
    plots.plot_pareto_surface(study, operating_point=OPERATING_POINT)"""),
    ("md", """\
    ## Operating points

    The best feasible trial (by accuracy) under each bound, as `neuromosaic pareto
    --operating-point` prints it. A bound that no feasible trial meets says the constraints
    and the bound cannot be met together with this search: relax one or search longer."""),
    ("code", """\
    from neuromosaic_optuna.pareto import operating_point

    bounds = ["latency<=2ms", "latency<=5ms", OPERATING_POINT, "memory<=400kB", "memory<=1MB"]
    rows = []
    for bound in bounds:
        chosen = operating_point(study, bound)
        m = chosen.user_attrs["metrics"] if chosen else {}
        rows.append([bound, chosen.number if chosen else "none feasible",
                     *(format_metric(k, m.get(k)) for k in ("accuracy", "latency", "memory",
                                                             "params"))])
    show_table(["operating point", "trial", "accuracy", "latency", "memory", "params"], rows)"""),
    ("md", """\
    ## Without the constraints

    When few (or no) trials are feasible, the unconstrained front shows what the search found
    anyway and how far it is from the bounds: `neuromosaic_optuna.pareto.pareto_ranks`
    without feasibility, and the hypervolume of all trials against the same kind of
    reference point."""),
    ("code", """\
    from neuromosaic_optuna.pareto import pareto_ranks, reference_point

    free_ranks = pareto_ranks(info.values, info.directions)
    free_front = [int(n) for n, r in zip(info.trial_numbers, free_ranks) if r == 0]
    free_ref = reference_point(info.values, info.directions, rule="natural",
                               metric_names=info.metric_names)
    free_hv = nm.hypervolume(info.values, info.directions, free_ref)
    print(f"unconstrained front: trials {free_front}; hypervolume {free_hv:.6g} "
          f"(feasible only: {info.hypervolume:.6g})")"""),
    ("md", """\
    ## Search health

    Hypervolume after each trial, and the diversity of the proposed architectures per NSGA-II
    generation ("monitor diversity" in the design document's lessons): a diversity that
    collapses early is premature convergence."""),
    ("code", "plots.plot_hypervolume(study)"),
    ("code", "plots.plot_diversity(study)"),
    ("md", """\
    ## What to decide

    * **Operating point**: pick the bound your deployment has (e.g. `latency<=20ms`) and take
      the trial the table names; the knee is the choice when no hard bound applies.
    * **Constraints**: when `min_accuracy` or `max_params` leaves no feasible trial, decide
      whether to relax it or to train longer; the unconstrained front tells how far off it is.
      With `smoke` (one epoch) nothing reaches 75%: rerun with `BUDGET = "cpu"`.
    * **Performance bounds**: the front's extremes are the best accuracy at any cost and the
      cheapest model at any accuracy: the envelope within which any target is realistic."""),
]

# 05 -------------------------------------------------------------------------------------

_ROBUST = [
    *_common("""\
    # Case study 5: Robustness study

    The design document's `robustness_study` evaluates models under **Gaussian input noise**
    (std 0.1, 0.2, 0.3), **adversarial attacks** (FGSM, PGD) and **corruptions** (gaussian,
    shot and impulse noise, as in CIFAR-10-C/ImageNet-C) with the metrics clean, corrupt and
    adversarial accuracy, and summarizes them as robustness scores:
    `corruption_resistance = corrupt_acc / clean_acc`,
    `adversarial_robustness = adv_acc / clean_acc`, `stability_index = np.std(test_accuracies)`.
    `studies/robustness.toml` holds the dict verbatim and searches accuracy against
    adversarial accuracy over an EfficientNet-style space plus two training knobs the seed
    names as regularizers: Gaussian noise augmentation (`train_noise_std`) and fast FGSM
    adversarial training (`train_adv_eps`).

    **What you decide here:** how much clean accuracy to give up for robustness, and whether
    noise or adversarial training is worth its cost.""", "robustness.toml"),
    ("md", """\
    ## Run the study

    Every trained trial is evaluated under all perturbations on the test split; the summary
    metrics go into `metrics`, the accuracy under each single perturbation and level into the
    user attribute `robustness`."""),
    ("code", _RUN),
    ("md", """\
    ## Robustness scores

    The seed's `robustness_scores` per trial, next to the accuracies they come from. A ratio
    of 1 means the perturbation costs nothing; the stability index is the spread of the
    accuracies over all perturbations (lower is steadier)."""),
    ("code", """\
    evaluated = [t for t in study.get_trials(deepcopy=False)
                 if "robustness" in t.user_attrs]
    keys = ["clean_accuracy", "noise_accuracy", "corrupt_accuracy", "adversarial_accuracy",
            "corruption_resistance", "adversarial_robustness", "stability_index"]
    show_table(["trial", *keys],
               [[t.number, *(format_metric(k, t.user_attrs["metrics"].get(k)) for k in keys)]
                for t in evaluated])"""),
    ("md", """\
    ## Accuracy per perturbation

    One column per single perturbation and level (`noise@<std>`, `<corruption>@<severity>`,
    `<attack>@<epsilon>`, epsilon in pixel units of [0, 1] images), one column per trial, from
    `plots.robustness_info`."""),
    ("code", """\
    rinfo = plots.robustness_info(study)
    show_table(["perturbation", *(f"trial {n}" for n in rinfo.trial_numbers)],
               [["clean", *(f"{c:.1f}%" for c in rinfo.clean_percent)]]
               + [[key, *(f"{v:.1f}%" for v in rinfo.per_perturbation[:, j])]
                  for j, key in enumerate(rinfo.perturbations)])"""),
    ("md", """\
    ## Clean vs robust accuracy

    Left: each trial's robust accuracies against its clean accuracy; the dashed diagonal is
    "robustness costs nothing", the vertical distance below it is what a perturbation takes
    away. Right: the accuracy of all trials under each perturbation and level; a box that
    falls quickly with the level marks a perturbation the models are fragile to."""),
    ("code", "plots.plot_robustness(study)"),
    ("md", """\
    ## Regularization, size and training cost

    The searched regularizers and the model size against what they bought: does noise or
    adversarial training raise the robust accuracy, at what clean accuracy and training time?"""),
    ("code", """\
    show_table(["trial", "train_noise_std", "train_adv_eps", "params", "train time", "clean",
                "adversarial", "corrupt"],
               [[t.number, f"{t.params['train_noise_std']:.3f}",
                 f"{t.params['train_adv_eps']:.3f}",
                 *(format_metric(k, t.user_attrs["metrics"].get(k))
                   for k in ("params", "train_time", "clean_accuracy", "adversarial_accuracy",
                             "corrupt_accuracy"))]
                for t in evaluated])"""),
    ("md", """\
    ## The clean/robust front

    The study's objectives are accuracy and adversarial accuracy: its front holds the trials
    where more robustness can only be had with less clean accuracy."""),
    ("code", _PARETO_TABLE),
    ("code", "plots.plot_hypervolume(study)"),
    ("md", """\
    ## What to decide

    * **The trade-off**: take the front trial whose adversarial accuracy meets your threat
      model at the smallest loss of clean accuracy; the knee is the balanced default.
    * **Regularizers**: keep noise or adversarial training only if the trials that use them
      sit higher in the left panel than those that do not, and their training time is
      acceptable.
    * **What to test further**: a perturbation whose box drops fastest is the one to
      evaluate more finely (`neuromosaic robustness` re-evaluates chosen trials). With `smoke`
      the models are at chance level everywhere: rerun with `BUDGET = "cpu"`."""),
]

_FINDINGS_MD = """\
    ## Findings

    `neuromosaic_optuna.insights` turns the study into findings: each is a number with a 95%
    bootstrap interval, and it is stated as a claim only when it survives false-discovery
    control (Benjamini-Hochberg at 5%) across all of the study's tests; otherwise the line
    says what was measured and that the study cannot support a claim. Effects are
    associations among the trials the sampler chose, not causes. The same lines come from
    `neuromosaic insights studies/{study_file}` and the HTML report. A `smoke` run has too
    few trials for any claim: rerun with `BUDGET = "cpu"`."""


def _findings(code: str) -> list[tuple[str, str]]:
    return [("md", _FINDINGS_MD), ("code", code)]


_STUDY_FINDINGS = _findings("""\
    from neuromosaic_optuna.insights import study_insights

    found = study_insights(study, seed=config.seed, n_boot=500)
    print("\\n".join(found.lines()))""")

_TRANSFER_FINDINGS = _findings("""\
    from neuromosaic_optuna.insights import transfer_insights

    found = transfer_insights(result.source, transfer[-1], baseline=scratch[-1],
                              seed=config.seed, n_boot=500)
    print("\\n".join(found.lines()))""")

#: Notebook file name -> (study file, cells).
NOTEBOOKS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "01_vit_search.ipynb": ("vit_search.toml", [*_VIT[:-1], *_STUDY_FINDINGS, _VIT[-1]]),
    "02_efficient_convnets.ipynb": ("efficient_convnets.toml",
                                    [*_CONVNETS[:-1], *_STUDY_FINDINGS, _CONVNETS[-1]]),
    "03_meta_learning_transfer.ipynb": (
        "transfer_cifar10_to_imagenet.toml",
        [*_TRANSFER[:-1], *_TRANSFER_FINDINGS, _TRANSFER[-1]]),
    "04_multi_objective.ipynb": ("multi_objective.toml",
                                 [*_MULTI[:-1], *_STUDY_FINDINGS, _MULTI[-1]]),
    "05_robustness.ipynb": ("robustness.toml",
                            [*_ROBUST[:-1], *_STUDY_FINDINGS, _ROBUST[-1]]),
}


def build_notebook(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` (a key of :data:`NOTEBOOKS`), without outputs.

    Args:
        name: File name such as ``"01_vit_search.ipynb"``.

    Returns:
        A validated nbformat 4 notebook.

    Example:
        >>> nb = build_notebook("01_vit_search.ipynb")
        >>> [c.source for c in nb.cells if c.cell_type == "code"][0]
        'BUDGET = "smoke"  # switch to "cpu" for the full CPU run'
    """
    study_file, parts = NOTEBOOKS[name]
    nb = new_notebook(cells=_cells(Path(name).stem, study_file, parts), metadata=_METADATA)
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    """The file text of notebook ``name`` as this script writes it."""
    return nbformat.writes(build_notebook(name)) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the notebooks next to this script, or check them with ``--check``.

    Returns:
        0 on success; 1 with ``--check`` when a notebook is missing or differs.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare the committed notebooks with what would be written")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = args.out / name
        text = render(name)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run python notebooks/_build.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
