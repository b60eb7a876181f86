"""Zero-cost proxies: score an untrained network on one batch to rank it before training.

Each proxy is one function ``proxy(model, inputs, targets) -> float`` (NASLib's shape) that
scores a freshly initialised network; higher means "predicted better" for every proxy here.
:func:`compute_proxies` runs the ones asked for on deep copies, so the caller's model is never
changed, and shares one forward/backward pass between proxies that can use the same one.

Proxies (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021, and Mellor
et al., "Neural Architecture Search without Training", ICML 2021):

* ``synflow``: ``sum |θ ⊙ ∂R/∂θ|`` over convolution and linear weights, where ``R`` is the
  sum of the outputs of the network with all parameters replaced by their absolute values,
  on an all-ones input, in float64, batch norm in eval mode with fresh statistics (almost the
  identity). Needs no data.
* ``grad_norm``: sum over convolution and linear layers of the L2 norm of the weight's
  gradient of the cross-entropy loss on the batch.
* ``snip``: ``sum |θ ⊙ ∂L/∂θ|`` over convolution and linear weights (same loss).
* ``jacob_cov``: NASWOT's first score: with ``J`` the gradients of the summed outputs with
  respect to each input image, ``-sum(log(λ + k) + 1/(λ + k))`` over the eigenvalues ``λ`` of
  the correlation matrix of ``J``'s rows, ``k = 1e-5``.
* ``naswot``: NASWOT's final score: ``log|det K|`` with ``K[i, j]`` the number of
  activation units (inputs of ReLU-like modules, sign taken as on/off) on which images
  ``i`` and ``j`` agree. ``nan`` when the network has no ReLU, ReLU6, SiLU, GELU or
  Hardswish module.
* ``params`` and ``flops``: the baselines, :func:`~neuromosaic_optuna.profiling.count_params`
  and :func:`~neuromosaic_optuna.profiling.count_flops` (MACs at one image), as counts:
  the trivial predictors a proxy has to beat.

Conventions: the data-dependent proxies run in train mode (batch norm on batch statistics, as
in the papers) with dropout and stochastic depth off, so a result depends only on the weights
and on the *set* of images: it is the same for any order of the batch (up to float rounding),
and the same for a seed when the network is built under that seed
(``torch.manual_seed(seed)``) and the batch is fixed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from neuromosaic_optuna.metrics import PROXY_METRICS
from neuromosaic_optuna.models import BuildContext, get_builder
from neuromosaic_optuna.profiling import count_flops, count_params

__all__ = [
    "PROXIES",
    "PROXY_BATCH",
    "TABULAR_NETWORKS",
    "compute_proxies",
    "grad_norm",
    "jacob_cov",
    "naswot",
    "proxy_rank_correlations",
    "score_architecture",
    "snip",
    "stand_in_batch",
    "synflow",
]

#: Every proxy :func:`compute_proxies` knows, in its default order: the metrics of
#: :data:`~neuromosaic_optuna.metrics.PROXY_METRICS`, then the baselines.
PROXIES: tuple[str, ...] = (*PROXY_METRICS, "params", "flops")

#: Images in the one seeded batch a study computes its proxies on.
PROXY_BATCH = 64

#: Tabular backends whose architectures can be built as networks (backend -> builder), so a
#: tabular study can measure proxies on the built, untrained network.
TABULAR_NETWORKS: dict[str, str] = {"nasbench201": "nasbench201_net"}

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish)


def _weighted_layers(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _proxy_mode(model: nn.Module) -> nn.Module:
    """Train mode (batch statistics) with every stochastic layer off, on a copy."""
    from torchvision.ops import StochasticDepth

    model = copy.deepcopy(model).train()
    for module in model.modules():
        if isinstance(module, (nn.modules.dropout._DropoutNd, StochasticDepth)):
            module.eval()
    model.zero_grad(set_to_none=True)
    return model


def _loss_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()


def grad_norm(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Sum of the per-layer L2 norms of the loss gradient of conv and linear weights.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> grad_norm(net, torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])) > 0
        True
    """
    net = _proxy_mode(model)
    _loss_gradients(net, inputs, targets)
    return _grad_norm_of(net)


def _grad_norm_of(net: nn.Module) -> float:
    return float(sum(m.weight.grad.norm().item() for m in _weighted_layers(net)
                     if m.weight.grad is not None))


def snip(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """SNIP saliency ``sum |θ ⊙ ∂L/∂θ|`` over conv and linear weights.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> snip(net, torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])) > 0
        True
    """
    net = _proxy_mode(model)
    _loss_gradients(net, inputs, targets)
    return _snip_of(net)


def _snip_of(net: nn.Module) -> float:
    return float(sum((m.weight.grad * m.weight).abs().sum().item()
                     for m in _weighted_layers(net) if m.weight.grad is not None))


def synflow(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None
            ) -> float:
    """SynFlow: synaptic saliency of the sign-linearised network on an all-ones input.

    Only the shape of ``inputs`` is used (one ``(1, C, H, W)`` image of ones); ``targets``
    is ignored.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
        >>> with torch.no_grad():
        ...     _ = net[1].weight.fill_(-0.5)
        >>> synflow(net, torch.zeros(3, 1, 2, 2))  # each |w| * grad = 0.5 * 1, 8 weights
        4.0
    """
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for tensor in [*net.parameters(), *net.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    net(ones).sum().backward()
    return float(sum((m.weight.grad * m.weight).abs().sum().item()
                     for m in _weighted_layers(net) if m.weight.grad is not None))


def _jacob_cov_of(jacobian: torch.Tensor) -> float:
    rows = jacobian.reshape(jacobian.shape[0], -1).double().cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(rows)
    if not np.isfinite(corr).all():  # a constant row (e.g. a cut network): no information
        return float("nan")
    eig = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(eig + k) + 1.0 / (eig + k)))


def jacob_cov(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None
              ) -> float:
    """NASWOT's Jacobian-covariance score (``nan`` when a row of the Jacobian is constant).

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
        >>> score = jacob_cov(net, torch.randn(6, 1, 5, 5))
        >>> bool(np.isfinite(score))
        True
    """
    net = _proxy_mode(model)
    x = inputs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    return _jacob_cov_of(grad)


def _activation_codes(net: nn.Module) -> tuple[list[torch.Tensor], list[Callable[[], None]]]:
    codes: list[torch.Tensor] = []
    handles = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        codes.append((args[0].detach() > 0).flatten(1).double())

    for module in net.modules():
        if isinstance(module, _ACTIVATIONS):
            handles.append(module.register_forward_pre_hook(hook).remove)
    return codes, handles


def _naswot_of(codes: Sequence[torch.Tensor]) -> float:
    if not codes:
        return float("nan")
    c = torch.cat(list(codes), dim=1)
    kernel = c @ c.T + (1.0 - c) @ (1.0 - c).T
    return float(torch.linalg.slogdet(kernel)[1].item())


def naswot(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None
           ) -> float:
    """NASWOT: log-determinant of the Hamming-agreement kernel of activation patterns.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 2))
        >>> naswot(net, torch.randn(4, 2, 2, 2)) > 0
        True
    """
    net = _proxy_mode(model)
    codes, handles = _activation_codes(net)
    with torch.no_grad():
        net(inputs)
    for remove in handles:
        remove()
    return _naswot_of(codes)


def compute_proxies(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *,
                    names: Sequence[str] = PROXIES) -> dict[str, float]:
    """Zero-cost proxies of an untrained network on one batch.

    ``jacob_cov``, ``naswot``, ``grad_norm`` and ``snip`` share one forward pass and two
    backward passes; ``synflow`` takes one forward and backward pass at batch 1 in float64.
    ``model`` itself is not changed (every proxy works on a copy).

    Args:
        model: A freshly initialised classifier taking ``inputs``; build it under
            ``torch.manual_seed(seed)`` for reproducible scores.
        inputs: One batch ``(B, C, H, W)``, ``B >= 2``.
        targets: Class indices ``(B,)``.
        names: Proxies to compute, a subset of :data:`PROXIES`.

    Returns:
        ``{name: score}`` in the order of ``names``; higher predicts better for the proxies,
        ``params`` and ``flops`` are counts (``flops``: MACs for one image).

    Raises:
        ValueError: An unknown proxy name, or a batch of fewer than two images, or targets
            that do not match the batch.

    Example:
        >>> from neuromosaic_optuna.models.nasbench201_net import NASBench201Network
        >>> torch.manual_seed(0) and None
        >>> net = NASBench201Network(["nor_conv_3x3"] * 6, num_classes=10, cells_per_stage=1)
        >>> x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 10
        >>> scores = compute_proxies(net, x, y)
        >>> list(scores) == list(PROXIES), scores["params"]
        (True, 364954.0)
        >>> flipped = compute_proxies(net, x.flip(0), y.flip(0), names=["snip"])
        >>> abs(flipped["snip"] - scores["snip"]) < 1e-5 * scores["snip"]  # order-free
        True
    """
    unknown = [name for name in names if name not in PROXIES]
    if unknown:
        raise ValueError(f"names: unknown proxy {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(PROXIES)}")
    if inputs.ndim != 4 or inputs.shape[0] < 2:
        raise ValueError(f"inputs must be a batch (B, C, H, W) with B >= 2; got shape "
                         f"{tuple(inputs.shape)}")
    if targets.shape != inputs.shape[:1]:
        raise ValueError(f"targets must have shape ({inputs.shape[0]},); got "
                         f"{tuple(targets.shape)}")
    wanted = set(names)
    scores: dict[str, float] = {}
    if wanted & {"jacob_cov", "naswot", "grad_norm", "snip"}:
        net = _proxy_mode(model)
        codes, handles = _activation_codes(net)
        x = inputs.detach().clone().requires_grad_(True)
        out = net(x)
        for remove in handles:
            remove()
        (jac,) = torch.autograd.grad(out.sum(), x, retain_graph=True)
        F.cross_entropy(out, targets).backward()
        scores.update(jacob_cov=_jacob_cov_of(jac), naswot=_naswot_of(codes),
                      grad_norm=_grad_norm_of(net), snip=_snip_of(net))
        del net, out, codes
    if "synflow" in wanted:
        scores["synflow"] = synflow(model, inputs)
    if "params" in wanted:
        scores["params"] = float(count_params(model))
    if "flops" in wanted:
        scores["flops"] = float(count_flops(model, tuple(inputs.shape[1:])))  # type: ignore[arg-type]
    return {name: scores[name] for name in names}


def score_architecture(architecture_type: str, params: Mapping[str, object], ctx: BuildContext,
                       inputs: torch.Tensor, targets: torch.Tensor, *, seed: int,
                       names: Sequence[str] = PROXIES) -> dict[str, float]:
    """Build a registered architecture with weights from ``seed`` and score it.

    The global random state is left as it was (the build runs under
    :func:`torch.random.fork_rng`), so the same seed, params and batch give the same scores.

    Args:
        architecture_type: A registered builder (not a tabular backend).
        params: The architecture's params.
        ctx: Classes, resolution, channels and options for the builder.
        inputs: One batch ``(B, C, H, W)`` at ``ctx``'s resolution.
        targets: Class indices ``(B,)``.
        seed: Seeds the weight initialisation.
        names: Proxies to compute (see :func:`compute_proxies`).

    Returns:
        ``{name: score}`` as :func:`compute_proxies`.

    Raises:
        KeyError: An unknown architecture type.
        ArchitectureError: The builder refuses ``params``.

    Example:
        >>> from neuromosaic_optuna.models.nasbench201 import EDGES
        >>> cell = dict.fromkeys(EDGES, "nor_conv_1x1")
        >>> ctx = BuildContext(num_classes=10, resolution=8, options={"nb201_cells_per_stage": 1})
        >>> x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
        >>> a = score_architecture("nasbench201_net", cell, ctx, x, y, seed=1, names=["snip"])
        >>> a == score_architecture("nasbench201_net", cell, ctx, x, y, seed=1, names=["snip"])
        True
    """
    builder = get_builder(architecture_type)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(params, ctx).model.to(inputs.device)
    return compute_proxies(model, inputs, targets, names=names)


def proxy_rank_correlations(scores: Mapping[str, Sequence[float]], truth: Sequence[float]
                            ) -> dict[str, tuple[float, float]]:
    """Spearman ρ and Kendall τ of each proxy against the true scores.

    A non-finite score (``nan``: the proxy has nothing to measure, e.g. ``jacob_cov`` of a
    network whose output does not depend on its input) ranks below every finite one, so a
    proxy is scored on every architecture, like the parameter count it is compared with.

    Example:
        >>> rho, tau = proxy_rank_correlations({"a": [1, 2, 3, 4]}, [10, 20, 40, 30])["a"]
        >>> round(rho, 3), round(tau, 3)
        (0.8, 0.667)
        >>> rho, _ = proxy_rank_correlations({"a": [float("nan"), 2, 3, 4]}, [1, 2, 3, 4])["a"]
        >>> round(rho, 3)  # nan ranks lowest
        1.0
    """
    from scipy.stats import kendalltau, spearmanr

    truth_array = np.asarray(truth, dtype=float)
    result = {}
    for name, values in scores.items():
        array = np.asarray(values, dtype=float)
        array = np.where(np.isfinite(array), array, -np.inf)
        rho = spearmanr(array, truth_array).statistic
        tau = kendalltau(array, truth_array).statistic
        result[name] = (float(rho), float(tau))
    return result



def stand_in_batch(size: int = PROXY_BATCH, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The documented stand-in batch of tabular studies (NAS-Bench-201 has no images offline).

    ``size`` Fashion-MNIST *training* images drawn with ``seed`` (sorted indices), resized
    from 28 to 32 pixels (bilinear), repeated to 3 channels and normalised with the dataset's
    mean 0.2860 and standard deviation 0.3530; targets are their 10 labels. The files are
    found as the ``fashion_mnist`` dataset is (:mod:`neuromosaic_optuna.data`).

    Args:
        size: Images in the batch.
        seed: Chooses the images.

    Returns:
        ``(images (size, 3, 32, 32), labels (size,))``.

    Raises:
        ConfigError: Fashion-MNIST is not installed (field ``proxies``).

    Example:
        >>> x, y = stand_in_batch(8, seed=0)
        >>> tuple(x.shape), y.dtype
        ((8, 3, 32, 32), torch.int64)
    """
    from neuromosaic_optuna._idx import read_idx_split
    from neuromosaic_optuna.config import ConfigError
    from neuromosaic_optuna.data import _locate

    try:
        images, labels = read_idx_split(_locate("fashion_mnist", None), "train")
    except ConfigError as exc:
        raise ConfigError("proxies", "the stand-in batch of tabular studies is Fashion-MNIST, "
                          f"which is missing: {exc.message}") from None
    pick = np.sort(np.random.default_rng(seed).choice(len(images), size=size, replace=False))
    x = torch.from_numpy(images[pick].astype(np.float32) / 255.0).unsqueeze(1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = ((x - 0.2860) / 0.3530).expand(-1, 3, -1, -1).contiguous()
    return x, torch.from_numpy(labels[pick].astype(np.int64))
