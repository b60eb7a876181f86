"""The Optuna objective: trial → params → model → costs → (training) → objective values.

What a trial stores (the same for every architecture type):

* user attribute ``metrics``: every measured metric (see :mod:`neuromosaic_optuna.metrics`),
  including the seed's case-2 efficiency metrics;
* user attribute ``architecture``: a JSON summary of the built network and its input size;
* user attribute ``status``: ``ok``, ``rejected`` (violated a cost constraint and was never
  trained), ``invalid`` (cannot be built), ``pruned`` (stopped early by a pruner; keeps its
  costs and curve), ``diverged`` (NaN/inf loss); ``reason`` when not ok;
* user attribute ``curve``: validation accuracy after each epoch;
* the study's zero-cost proxies (``proxies = [...]``, and any proxy named as an objective or
  constraint) among the ``metrics``, measured after profiling and before training
  (:meth:`Objective.proxy_scores`), so proxy constraints reject before training;
* every constraint via ``trial.set_constraint`` (exactly once).

Representation of trials that were not fully trained, so samplers learn from them:

* **rejected** (cost constraint violated before training): state COMPLETE, ``accuracy`` (and
  ``test_accuracy``) set to the sentinel ``0.0``, costs measured, the violated constraint
  ``> 0``: constrained domination ranks it below every feasible trial;
* **invalid** (cannot be built, e.g. a patch size that does not divide the image): state
  PRUNED with the reason; no values exist for it;
* **diverged**: state FAIL with the reason (the study continues).

``--n-trials`` / ``max_trials`` count COMPLETE and PRUNED trials.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import FloatDistribution, IntDistribution

from neuromosaic_optuna import _compat
from neuromosaic_optuna.config import ConfigError, StudyConfig, load_config, load_study_file
from neuromosaic_optuna.constraints import cost_violations, set_constraints
from neuromosaic_optuna.metrics import METRICS, efficiency_metrics
from neuromosaic_optuna.record import add_phase, phase, write_metrics, write_result
from neuromosaic_optuna.robustness import DEFAULT_PERTURBATIONS
from neuromosaic_optuna.robustness import ROBUSTNESS_METRICS as _ROBUSTNESS_METRICS
from neuromosaic_optuna.space import SearchSpace

if TYPE_CHECKING:
    from neuromosaic_optuna.data import DatasetSplits

__all__ = ["Objective", "REJECTED_ACCURACY", "check_writable_dir", "weighted_score"]

#: Accuracy recorded for a trial rejected before training (see module docstring).
REJECTED_ACCURACY = 0.0

#: Search-space params that set training, not the architecture; builders never see them.
#: ``train_noise_std`` (Gaussian noise augmentation, pixel units) and ``train_adv_eps`` (fast
#: FGSM adversarial training, L-inf epsilon) are the robustness regularizers of case study 5.
TRAINING_PARAMS = frozenset({"learning_rate", "weight_decay", "train_noise_std",
                             "train_adv_eps"})

#: Metrics measured by :func:`neuromosaic_optuna.robustness.evaluate_robustness`.
ROBUSTNESS_METRICS = frozenset(_ROBUSTNESS_METRICS)


def weighted_score(config: StudyConfig, metrics: Mapping[str, float]) -> float:
    """Scalarize metrics with the objective weights (``search_strategy = "weighted"``).

    Each metric is first normalized: fractions (accuracy-like) stay as they are; every other
    metric is taken in orders of magnitude relative to its bound when the study constrains it
    (``log10(value / bound)``) and to 1 otherwise. With the seed's weights (accuracy 1.0,
    latency -0.5, memory -0.3), a tenfold latency costs as much as 0.5 of accuracy.

    Example:
        >>> cfg = load_config({"name": "w", "architecture_type": "conv_net",
        ...     "search_space": {"w": [1, 2]}, "search_strategy": "weighted",
        ...     "objectives": {"accuracy": {"weight": 1.0}, "latency": {"weight": -0.5}}})
        >>> round(weighted_score(cfg, {"accuracy": 0.9, "latency": 0.01}), 6)
        1.9
    """
    bounds = {c.metric: c.bound for c in config.constraints if c.kind == "max" and c.bound > 0}
    score = 0.0
    for spec in config.objectives:
        value = float(metrics[spec.name])
        if METRICS[spec.name].unit != "fraction":
            value = math.log10(max(value, 1e-12) / bounds.get(spec.name, 1.0))
        score += (spec.weight or 0.0) * value
    return score


class Objective:
    """An Optuna objective built from a study configuration.

    Args:
        config: A :class:`StudyConfig`, a study dict, or the path of a study file.
        timing: Measure latency and throughput (turn off only where no constraint or
            objective needs them, e.g. in quick tests).

    Example:
        >>> import optuna, neuromosaic_optuna as nm
        >>> config = nm.load_study_file("studies/quickstart.toml",
        ...                             overrides={"epochs": 1, "max_trials": 1})
        >>> objective = nm.Objective(config)
        >>> study = nm.create_study(config, storage=None)
        >>> study.optimize(objective, n_trials=1)
        >>> sorted(study.trials[0].user_attrs)[:2]
        ['architecture', 'curve']
    """

    def __init__(self, config: StudyConfig | Mapping[str, Any] | str | Path, *,
                 timing: bool = True) -> None:
        if isinstance(config, (str, Path)):
            config = load_study_file(config)
        elif not isinstance(config, StudyConfig):
            config = load_config(config)
        self.config: StudyConfig = config
        from neuromosaic_optuna.models import list_models

        if config.architecture_type not in list_models():
            raise ConfigError("experiment.architecture_type", f"unknown architecture_type "
                              f"{config.architecture_type!r}; registered: "
                              f"{', '.join(list_models())}")
        self.space = SearchSpace(config.search_space, path="search_space")
        self.timing = timing
        self._splits: dict[int, DatasetSplits] = {}
        self._device: Any = None
        self._proxy_cache: dict[str, dict[str, float]] = {}
        if config.proxies and config.architecture_type not in _proxy_networks():
            raise ConfigError("proxies", f"{config.architecture_type} is a table without "
                              f"networks to score; proxies work on built architectures and on "
                              f"{', '.join(sorted(_proxy_networks()))}")
        #: Extra per-epoch hooks ``hook(trial, epoch, metrics)``; pruners plug in here.
        self.epoch_hooks: list[Callable[[optuna.trial.Trial, int, dict[str, float]], None]] = []

    # ------------------------------------------------------------------ helpers

    @property
    def needs_robustness(self) -> bool:
        """True when the study evaluates perturbations after training."""
        cfg = self.config
        wanted = {o.name for o in cfg.objectives} | {c.metric for c in cfg.constraints}
        return bool(cfg.perturbations) or bool(wanted & ROBUSTNESS_METRICS) or bool(
            set(cfg.robustness_metrics) & ROBUSTNESS_METRICS)

    @property
    def model_options(self) -> dict[str, Any]:
        """Builder options: the study's ``model_options`` plus ``head_dim``."""
        return {**self.config.model_options, "head_dim": self.config.head_dim}

    def input_resolution(self, params: Mapping[str, Any]) -> int:
        """The input size a trial trains at: the searched ``resolution`` (or the study's),
        scaled into ``max_resolution`` when the budget caps it, rounded to a multiple of 8."""
        cfg = self.config
        res = int(params.get("resolution", cfg.resolution))
        cap = cfg.max_resolution
        if cap is None:
            return res
        dist = self.space.distributions.get("resolution")
        high = dist.high if isinstance(dist, (IntDistribution, FloatDistribution)) else res
        scaled = res * cap / high if high > cap else float(res)
        return int(min(cap, max(8, round(scaled / 8) * 8)))

    def dataset(self, resolution: int) -> DatasetSplits:
        """The study's dataset at ``resolution`` (loaded once per process and resolution).

        Splits that fit in ``device_data`` bytes as ``uint8`` (digits, CIFAR-10, image folders
        decoded once) are held on the training device and converted, resized and augmented
        there per batch (:func:`~neuromosaic_optuna.data.resident_splits`);
        ``device_data = 0`` keeps the host-side float / lazily read splits."""
        if resolution not in self._splits:
            from neuromosaic_optuna.data import load_dataset, resident_splits

            cfg = self.config
            splits = load_dataset(
                cfg.dataset, resolution=resolution, seed=cfg.seed, path=cfg.dataset_path,
                max_train_samples=cfg.max_train_samples,
                resident_bytes=cfg.device_data if cfg.device_data > 0 else None,
                train_augmentation=self.augmentation)
            self._splits[resolution] = resident_splits(splits, self.device)
        return self._splits[resolution]

    @property
    def augmentation(self) -> str:
        """The study's ``augmentation``, else the dataset's default
        (:func:`~neuromosaic_optuna.data.default_augmentation`)."""
        from neuromosaic_optuna.data import default_augmentation

        return self.config.augmentation or default_augmentation(self.config.dataset)

    @property
    def device(self) -> Any:
        """The ``torch.device`` trials train and evaluate on (study setting ``device``,
        resolved once; a device this machine lacks is a :class:`ConfigError`)."""
        if self._device is None:
            from neuromosaic_optuna.training import resolve_device

            self._device = resolve_device(self.config.device)
        return self._device

    @device.setter
    def device(self, value: Any) -> None:
        self._device = value

    @property
    def latency_device(self) -> Any:
        """The ``torch.device`` costs are measured for (study setting ``latency_device``,
        default: the training device): latency and throughput are timed there, activation
        memory on CUDA is the allocator's peak; FLOPs and params do not depend on it.

        Raises:
            ConfigError: A ``latency_device`` this machine does not have.
        """
        spec = self.config.latency_device
        if spec is None:
            return self.device
        from neuromosaic_optuna.config import ConfigError
        from neuromosaic_optuna.training import resolve_device

        try:
            return resolve_device(spec)
        except ConfigError as exc:
            raise ConfigError("latency_device", exc.message) from None

    def build(self, params: Mapping[str, Any]) -> tuple[Any, int]:
        """Build the architecture of ``params`` as a trial does: training-only params
        (:data:`TRAINING_PARAMS`) dropped, the study's input resolution, class count and
        ``model_options``, sized on the ``meta`` device before any memory is allocated. The
        one build path of trials, re-evaluation and warm-start cost profiling.

        Returns:
            ``(BuiltModel, input resolution)``.

        Raises:
            ArchitectureError: The params cannot be built, or break a size limit.
        """
        from neuromosaic_optuna.models import BuildContext, count_params_meta, get_builder

        resolution = self.input_resolution(params)
        ctx = BuildContext(num_classes=self.dataset(resolution).num_classes,
                           resolution=resolution, options=self.model_options)
        arch = {k: v for k, v in params.items() if k not in TRAINING_PARAMS}
        builder = get_builder(self.config.architecture_type)
        count_params_meta(builder, arch, ctx)  # sized before memory is allocated
        return builder(arch, ctx), resolution

    def preflight(self) -> None:
        """Fail fast, before any storage is touched, with a :class:`ConfigError`: the device
        resolves (saying which one runs) and the precision suits it; the artifact folder
        exists or can be made and is writable; the search space, ``model_options`` and
        ``known_good`` fit the builder (names it reads, values inside the space, each range
        end buildable and under the size limits, sized on the ``meta`` device without
        allocating memory); the dataset loads (or a tabular backend knows it).
        """
        from neuromosaic_optuna.models import get_tabular, is_tabular

        cfg = self.config
        if cfg.artifact_dir:
            check_writable_dir(cfg.artifact_dir, "artifact_dir")
        self._check_known_good()
        if is_tabular(cfg.architecture_type):
            backend = get_tabular(cfg.architecture_type)
            known = getattr(backend, "datasets", None)
            if known is not None and cfg.dataset.lower() not in known:
                raise ConfigError("dataset", f"{cfg.architecture_type} has tables for "
                                  f"{', '.join(known)}, not {cfg.dataset!r}")
            return
        self._check_builder()
        from neuromosaic_optuna.training import resolve_precision

        resolve_precision(self.config.precision, self.device)  # fp16 off CUDA fails here
        _ = self.latency_device  # a latency_device this machine lacks fails here
        self.dataset(self.input_resolution({}))

    def device_line(self) -> str:
        """What the run says about its device, e.g. ``device: cpu (device = 'auto')``; the CLI
        prints it on stdout once the storage is open, so an error stays one line on stderr."""
        return f"device: {self.device} (device = {self.config.device!r})"

    def _check_known_good(self) -> None:
        """Every ``known_good`` param is a search-space param with a value inside the space."""
        for i, params in enumerate(self.config.known_good):
            for name, value in params.items():
                path = f"known_good[{i}].{name}"
                dist = self.space.distributions.get(name)
                if dist is None:
                    raise ConfigError(path, f"not a search-space parameter; the space has "
                                      f"{', '.join(self.space.distributions)}")
                try:
                    inside = _compat.distribution_contains(dist, dist.to_internal_repr(value))
                except (ValueError, TypeError):
                    inside = False
                if not inside:
                    raise ConfigError(path, f"{value!r} is outside the search space "
                                      f"({_describe(dist)})")

    def _check_builder(self) -> None:
        """Check names against the builder's schema, then build each range end of every
        param on the ``meta`` device (the other params at their low end / first choice)."""
        from neuromosaic_optuna.models import (
            ArchitectureError,
            BuildContext,
            builder_schema,
            count_params_meta,
            get_builder,
        )

        cfg = self.config
        schema = builder_schema(cfg.architecture_type)
        arch = {n: d for n, d in self.space.distributions.items() if n not in TRAINING_PARAMS}
        if schema is not None:
            known_params, known_options = schema
            for name in arch:
                if name not in known_params:
                    raise ConfigError(f"search_space.{name}", f"{cfg.architecture_type} has no "
                                      f"param {name!r}; it has {', '.join(sorted(known_params))}"
                                      f" (training: {', '.join(sorted(TRAINING_PARAMS))})")
            for key in cfg.model_options:
                if key not in known_options:
                    raise ConfigError(f"model_options.{key}", f"unknown option for "
                                      f"{cfg.architecture_type}; known: "
                                      f"{', '.join(sorted(known_options))}")
        builder = get_builder(cfg.architecture_type)
        resolution = self.input_resolution({})
        ctx = BuildContext(num_classes=10, resolution=resolution, options=self.model_options)
        if cfg.model_options:
            try:  # the options alone, every param at the builder's default
                count_params_meta(builder, {}, ctx)
            except ArchitectureError as exc:
                raise ConfigError("model_options", f"cannot be built: {exc}") from None
        base = {n: _ends(d)[0] for n, d in arch.items()}
        for others in ({}, base):  # each param alone, then with the others at their low end
            for name, dist in arch.items():
                ends = _ends(dist)
                failures = []
                for value in ends:
                    try:
                        count_params_meta(builder, {**others, name: value}, ctx)
                    except ArchitectureError as exc:
                        failures.append((value, exc))
                categorical = not isinstance(dist, (IntDistribution, FloatDistribution))
                if failures and (not categorical or len(failures) == len(ends)):
                    bad, why = failures[0]
                    raise ConfigError(f"search_space.{name}",
                                      f"{bad!r} cannot be built: {why}")
        try:
            smallest = count_params_meta(builder, base, ctx)
        except ArchitectureError as exc:
            raise ConfigError("search_space", f"the low end of every param cannot be built "
                              f"together: {exc}") from None
        for c in cfg.constraints:
            if c.metric == "params" and c.kind == "max" and smallest > c.bound:
                raise ConfigError(f"constraints.{c.name}", f"even the smallest architecture of "
                                  f"the space has {smallest:.3g} params, above {c.raw}; widen "
                                  "the bound or shrink the space")

    def proxy_batch(self, resolution: int) -> tuple[Any, Any]:
        """The one seeded batch a trial's zero-cost proxies are computed on.

        Built architectures: :data:`~neuromosaic_optuna.proxies.PROXY_BATCH` images of the
        study's **validation** split at ``resolution`` (a seeded stratified subset, then a
        seeded draw with the study's ``seed``; never test data), on the split's device.
        Tabular backends: the documented Fashion-MNIST stand-in batch
        (:func:`~neuromosaic_optuna.proxies.stand_in_batch`, 32 px).
        """
        import torch

        from neuromosaic_optuna.models import is_tabular
        from neuromosaic_optuna.proxies import PROXY_BATCH, stand_in_batch

        cfg = self.config
        if is_tabular(cfg.architecture_type):
            return stand_in_batch(PROXY_BATCH, cfg.seed)
        from neuromosaic_optuna.data import split_tensors

        x, y = split_tensors(self.dataset(resolution).val, limit=PROXY_BATCH, seed=cfg.seed)
        if len(x) > PROXY_BATCH:
            pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed))
            pick = pick[:PROXY_BATCH]
            x, y = x[pick.to(x.device)], y[pick.to(y.device)]
        return x.float(), y.long()

    def proxy_scores(self, params: Mapping[str, Any]) -> dict[str, float]:
        """The study's zero-cost proxies of ``params``'s untrained network.

        The network is built under ``torch.manual_seed(config.seed)`` (the global random state
        is left as it was), so an architecture scores the same in every trial; the batch is
        :meth:`proxy_batch`. Tabular backends build their cells as networks
        (:data:`~neuromosaic_optuna.proxies.TABULAR_NETWORKS`, 10-class head, 32 px: the
        figures of ``benchmarks/proxies.py``). A proxy with nothing to measure (``nan``) is
        ``-inf``, below every finite score. Results are cached per architecture.

        Returns:
            ``{proxy: score}`` for ``config.proxies`` (empty when the study has none).

        Raises:
            ArchitectureError: The params cannot be built.

        Example:
            >>> from neuromosaic_optuna import load_study_file
            >>> cfg = load_study_file("studies/quickstart.toml", budget="smoke")
            >>> obj = Objective(cfg.with_overrides(proxies=("naswot",)))
            >>> params = {"depth_multiplier": 0.5, "width_multiplier": 0.25, "se_ratio": 0.0}
            >>> scores = obj.proxy_scores(params)
            >>> list(scores), scores == obj.proxy_scores(params)
            (['naswot'], True)
        """
        cfg = self.config
        if not cfg.proxies:
            return {}
        import torch

        from neuromosaic_optuna.models import BuildContext, get_builder, is_tabular
        from neuromosaic_optuna.proxies import compute_proxies

        arch = {k: v for k, v in params.items() if k not in TRAINING_PARAMS}
        key = json.dumps(arch, sort_keys=True, default=str)
        if key not in self._proxy_cache:
            tabular = is_tabular(cfg.architecture_type)
            resolution = 32 if tabular else self.input_resolution(params)
            x, y = self.proxy_batch(resolution)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                if tabular:
                    builder = get_builder(_proxy_networks()[cfg.architecture_type])
                    model = builder(arch, BuildContext(num_classes=10, resolution=32)).model
                else:
                    model = self.build(params)[0].model
            scores = compute_proxies(model.to(x.device), x, y, names=cfg.proxies)
            self._proxy_cache[key] = {k: v if math.isfinite(v) else -math.inf
                                      for k, v in scores.items()}
        return dict(self._proxy_cache[key])

    def _values(self, metrics: Mapping[str, float]) -> float | list[float]:
        if self.config.is_weighted:
            return weighted_score(self.config, metrics)
        values = [float(metrics[o.name]) for o in self.config.objectives]
        return values[0] if len(values) == 1 else values

    # ------------------------------------------------------------------ call

    def __call__(self, trial: optuna.trial.Trial) -> float | list[float]:
        with phase("sample"):
            params = self.space.suggest(trial)
        from neuromosaic_optuna.models import is_tabular

        if is_tabular(self.config.architecture_type):
            return self._tabular(trial, params)
        return self._train(trial, params)

    def _tabular(self, trial: optuna.trial.Trial, params: dict[str, Any]) -> float | list[float]:
        from neuromosaic_optuna.models import ArchitectureError, get_tabular

        backend = get_tabular(self.config.architecture_type)
        try:
            with phase("train"):
                metrics = dict(backend.evaluate(params, dataset=self.config.dataset,
                                                seed=self.config.seed + trial.number))
        except ArchitectureError as exc:
            self._store(trial, {}, params, "invalid", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        if self.config.proxies:
            with phase("proxies"):
                metrics.update(self.proxy_scores(params))
        return self._finish(trial, metrics, dict(params), "ok", None)

    def _train(self, trial: optuna.trial.Trial, params: dict[str, Any]) -> float | list[float]:
        import torch

        from neuromosaic_optuna.models import (
            ArchitectureError,
        )
        from neuromosaic_optuna.profiling import latency_lock_wait, profile_model
        from neuromosaic_optuna.training import DivergedError, resolve_precision, train_model

        cfg = self.config
        resolution = self.input_resolution(params)
        torch.manual_seed(cfg.seed * 100_003 + trial.number)
        try:
            with phase("build"):  # the dataset loads here on a process's first trial
                splits = self.dataset(resolution)
                built, _ = self.build(params)
        except ArchitectureError as exc:
            self._store(trial, {}, {"params": params, "input_resolution": resolution},
                        "invalid", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        architecture = {**built.summary, "input_resolution": resolution}
        key = json.dumps({"arch": cfg.architecture_type, "params": params, "res": resolution,
                          "classes": splits.num_classes}, sort_keys=True, default=str)
        waited, started = latency_lock_wait(), time.perf_counter()
        profile = profile_model(built.model, built.input_size,
                                latency_batch_size=cfg.latency_batch_size, timing=self.timing,
                                cache_key=key, device=self.latency_device)
        waited = latency_lock_wait() - waited
        add_phase("profile", time.perf_counter() - started - waited)
        add_phase("latency_lock_wait", waited)
        metrics: dict[str, float] = dict(profile.as_dict())
        if cfg.proxies:
            with phase("proxies"):
                metrics.update(self.proxy_scores(params))
        violated = cost_violations(cfg.constraints, metrics)
        if violated:
            metrics.update(accuracy=REJECTED_ACCURACY, test_accuracy=REJECTED_ACCURACY,
                           train_time=0.0)
            reason = "violates " + ", ".join(
                f"{c.name} = {c.raw} (measured {metrics[c.metric]:.4g})"
                for c in cfg.constraints if c.name in violated)
            return self._finish(trial, metrics, architecture, "rejected", reason)

        # Costs are known now: store them before training, so pruners can judge the trial.
        with phase("record"):
            write_metrics(trial, metrics)
        curve: list[float] = []

        def on_epoch(epoch: int, values: dict[str, float]) -> None:
            curve.append(values["accuracy"])
            for hook in self.epoch_hooks:
                hook(trial, epoch, values)

        noise_std = float(params.get("train_noise_std", 0.0))
        adv_eps = float(params.get("train_adv_eps", 0.0))
        from neuromosaic_optuna.data import standard_augment

        # Splits read from disk are augmented as they are read (RandomResizedCrop + flip);
        # in-memory ones get crop + flip per batch on the device.
        crop_flip = self.augmentation == "standard" and not splits.train_augmented
        augment = None
        if noise_std > 0 or adv_eps > 0 or crop_flip:
            from neuromosaic_optuna.robustness import augment_batch

            def augment(model: Any, x: Any, y: Any, generator: Any) -> Any:
                if crop_flip:  # training batches only: train_model applies no hook elsewhere
                    x = standard_augment(x, generator)
                return augment_batch(model, x, y, noise_std=noise_std, adv_eps=adv_eps,
                                     generator=generator)

        try:
            with phase("train"):
                result = train_model(
                    built.model, splits.train, splits.val, epochs=cfg.epochs,
                    batch_size=cfg.batch_size,
                    learning_rate=float(params.get("learning_rate", cfg.learning_rate)),
                    weight_decay=float(params.get("weight_decay", cfg.weight_decay)),
                    optimizer=cfg.optimizer, seed=cfg.seed + trial.number, on_epoch=on_epoch,
                    augment=augment, device=self.device,
                    num_workers=loader_workers(splits.train),
                    precision=resolve_precision(cfg.precision, self.device,
                                                built.summary.get("family")))
        except DivergedError as exc:
            self._store(trial, metrics, architecture, "diverged", str(exc), curve)
            raise
        except optuna.TrialPruned as exc:
            self._store(trial, metrics, architecture, "pruned", str(exc) or "pruned", curve)
            raise
        from neuromosaic_optuna.training import evaluate_accuracy

        with phase("train"):
            metrics.update(accuracy=result.val_accuracy, train_loss=result.train_loss,
                           train_time=result.train_time,
                           test_accuracy=evaluate_accuracy(built.model, splits.test))
            if self.needs_robustness:
                metrics.update(self._robustness(trial, built.model, splits.val))
            if cfg.artifact_dir:
                self._save_weights(trial, built.model)
        return self._finish(trial, metrics, architecture, "ok", None, curve)

    def _save_weights(self, trial: optuna.trial.Trial, model: Any) -> None:
        """Upload the trained weights (a ``state_dict``) as an Optuna artifact of the trial."""
        import tempfile

        import torch
        from optuna.artifacts import FileSystemArtifactStore, upload_artifact

        folder = Path(str(self.config.artifact_dir))
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"trial-{trial.number}-weights.pt"
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
            artifact_id = upload_artifact(artifact_store=FileSystemArtifactStore(str(folder)),
                                          file_path=str(path), study_or_trial=trial,
                                          mimetype="application/octet-stream")
        trial.set_user_attr("weights_artifact", artifact_id)

    def load_model(self, trial: optuna.trial.FrozenTrial) -> Any:
        """Rebuild a finished trial's model and load its trained weights from the artifact
        store (``torch.load(weights_only=True)``: tensors only, nothing is unpickled).

        Raises:
            ConfigError: The trial has no saved weights (run with an ``artifact_dir``).
        """
        import tempfile

        import torch
        from optuna.artifacts import FileSystemArtifactStore, download_artifact


        artifact_id = trial.user_attrs.get("weights_artifact")
        if not artifact_id or not self.config.artifact_dir:
            raise ConfigError("--trials", f"trial {trial.number} has no saved weights; run the "
                              "study with an artifact directory (--artifact-dir)")
        built, _ = self.build(trial.params)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "weights.pt"
            try:
                download_artifact(
                    artifact_store=FileSystemArtifactStore(str(self.config.artifact_dir)),
                    file_path=str(path), artifact_id=str(artifact_id))
            except Exception as exc:  # noqa: BLE001 - a missing file is a user-facing error
                raise ConfigError("--artifact-dir", f"weights of trial {trial.number} not found "
                                  f"in {self.config.artifact_dir} ({exc.__class__.__name__})") \
                    from None
            built.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        built.model.to(self.device)
        built.model.eval()
        return built.model

    def _robustness(self, trial: optuna.trial.Trial, model: Any, val: Any) -> dict[str, float]:
        """Evaluate the trained model under the study's perturbations on the **validation**
        split (robustness objectives and constraints steer the search, so they never read test
        data; ``neuromosaic robustness`` reports on the test split); per-perturbation
        accuracies go to the user attribute ``robustness``."""
        from neuromosaic_optuna.data import split_tensors
        from neuromosaic_optuna.robustness import evaluate_robustness

        x, y = split_tensors(val, seed=self.config.seed)
        result = evaluate_robustness(model, x, y,
                                     self.config.perturbations or DEFAULT_PERTURBATIONS,
                                     seed=self.config.seed)
        trial.set_user_attr("robustness", {"metrics": dict(result.metrics),
                                           "details": dict(result.details)})
        return dict(result.metrics)

    def _finish(self, trial: optuna.trial.Trial, metrics: dict[str, float],
                architecture: Mapping[str, Any], status: str, reason: str | None,
                curve: list[float] | None = None) -> float | list[float]:
        if {"params", "accuracy", "memory", "throughput", "latency"} <= set(metrics):
            metrics.update(efficiency_metrics(metrics, batch_size=self.config.latency_batch_size))
        with phase("record"):
            set_constraints(trial, self.config.constraints, metrics)
        self._store(trial, metrics, architecture, status, reason, curve)
        return self._values(metrics)

    @staticmethod
    def _store(trial: optuna.trial.Trial, metrics: Mapping[str, float],
               architecture: Mapping[str, Any], status: str, reason: str | None,
               curve: list[float] | None = None) -> None:
        with phase("record"):
            write_result(trial, metrics, architecture, status, reason, curve,
                         worker=worker_id())


def _builders() -> list[str]:
    from neuromosaic_optuna.models import is_tabular, list_models

    return [name for name in list_models() if not is_tabular(name)]


def _proxy_networks() -> dict[str, str]:
    """Architecture types whose trials can be scored by proxies: every builder (as itself)
    and the tabular backends of :data:`~neuromosaic_optuna.proxies.TABULAR_NETWORKS`."""
    from neuromosaic_optuna.proxies import TABULAR_NETWORKS

    return {**{name: name for name in _builders()}, **TABULAR_NETWORKS}


def _ends(dist: Any) -> list[Any]:
    """The values probed for a distribution: its two ends, or every choice."""
    if isinstance(dist, (IntDistribution, FloatDistribution)):
        return [dist.low, dist.high]
    return list(dist.choices)


def _describe(dist: Any) -> str:
    if isinstance(dist, (IntDistribution, FloatDistribution)):
        return f"{dist.low:g}..{dist.high:g}" + (f" step {dist.step:g}" if dist.step else "")
    return "choices " + ", ".join(map(repr, dist.choices))


def check_writable_dir(folder: str | Path, field: str) -> None:
    """Raise :class:`ConfigError` unless ``folder`` is a writable directory or can be made
    (its nearest existing ancestor is a writable directory). Creates nothing.

    Example:
        >>> check_writable_dir("/proc/no-such-dir", "artifact_dir")
        Traceback (most recent call last):
        ...
        neuromosaic_optuna.config.ConfigError: artifact_dir: /proc/no-such-dir cannot be made: /proc is not writable
    """  # noqa: E501
    import os

    path = Path(folder).expanduser()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(field, f"{folder}: {probe} is a file, not a folder; choose a folder")
    import tempfile

    try:  # os.access says yes to root everywhere: try it (the probe is removed at once)
        if not os.access(probe, os.W_OK | os.X_OK):
            raise PermissionError(probe)
        with tempfile.TemporaryDirectory(dir=probe, prefix=".neuromosaic-probe-"):
            pass
    except OSError:
        if probe == path:
            raise ConfigError(field, f"{folder} is not writable; choose a writable folder") \
                from None
        raise ConfigError(field, f"{folder} cannot be made: {probe} is not writable") from None


#: Most ``DataLoader`` worker processes a trial reads an on-disk split with.
MAX_LOADER_WORKERS = 8


def loader_workers(split: Any) -> int:
    """Worker processes for reading ``split``: none for an in-memory split (batched where it
    is held) or a small one; else up to :data:`MAX_LOADER_WORKERS`, bounded by this process's
    CPU threads (``--workers`` splits the cores between workers).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> loader_workers(TensorDataset(torch.zeros(4096, 1)))
        0
    """
    import torch
    from torch.utils.data import TensorDataset

    from neuromosaic_optuna.data import ByteImageDataset

    if isinstance(split, (TensorDataset, ByteImageDataset)) or len(split) < 1024:
        return 0
    return max(1, min(MAX_LOADER_WORKERS, torch.get_num_threads()))


def worker_id() -> str:
    """``host:pid`` of this process: stored on every trial as the user attribute ``worker``,
    so a shared study shows which worker ran what.

    Example:
        >>> import os
        >>> worker_id().endswith(f":{os.getpid()}")
        True
    """
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


