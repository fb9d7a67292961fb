"""Activation statistics and the per-layer thresholds the converter needs."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .data import TensorLoader

__all__ = [
    "Thresholds",
    "run_hooked",
    "is_activation",
    "activation_layers",
    "activation_sites",
    "activation_thresholds",
    "channel_values",
    "layer_statistics",
    "variance_penalty",
    "bn_variance_penalty",
    "VariancePenalty",
    "TrainableClip",
    "add_clipping",
    "clip_l2",
    "learned_thresholds",
    "channel_samples",
    "channel_tails",
    "channel_eta",
    "layer_eta",
    "range_usage",
]


@dataclass(frozen=True)
class Thresholds:
    """Clipping thresholds of one layer: ``theta_p > 0`` and ``theta_n < 0`` (``None`` for ReLU)."""

    theta_p: float
    theta_n: float | None = None

    def __post_init__(self) -> None:
        if not self.theta_p > 0:
            raise ValueError(f"theta_p must be > 0, got {self.theta_p}")
        if self.theta_n is not None and not self.theta_n < 0:
            raise ValueError(f"theta_n must be < 0, got {self.theta_n}")


def is_activation(m: nn.Module) -> bool:
    """ReLU, Leaky ReLU, or a clipping activation exposing ``theta_p``."""
    return isinstance(m, (nn.ReLU, nn.LeakyReLU)) or hasattr(m, "theta_p")


def activation_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The activation modules of ``model`` by qualified name, in definition order.

    This walks the module tree as it is. For statistics and thresholds use
    :func:`activation_sites`, which also sees activations written as functions and gives
    each call site of a reused module its own entry, under the names the converter uses.
    """
    return {name: m for name, m in model.named_modules() if name and is_activation(m)}


def activation_sites(model: nn.Module) -> tuple[nn.Module, dict[str, nn.Module]]:
    """``(net, layers)``: a copy of ``model`` in the converter's canonical form (batch norm kept,
    see :func:`negspike.graph.canonical`) and its activation modules, one per call site, by the
    names :func:`negspike.convert` gives the neurons. Raises for operations it cannot convert."""
    from .graph import canonical

    net = canonical(model, fold_bn=False)
    layers = activation_layers(net)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no activations (ReLU / Leaky ReLU, as modules or functions)")
    return net, layers


@torch.no_grad()
def run_hooked(model: nn.Module, x: torch.Tensor, hooks: dict[nn.Module, Callable], batch_size: int = 1000,
               after_batch: Callable[[], None] | None = None) -> None:
    """Run ``model`` in eval mode over ``x`` in mini-batches with the given forward hooks.

    The hooks are removed and the model's training mode restored afterwards, also on error.
    ``after_batch()`` runs after each mini-batch.
    """
    handles = [m.register_forward_hook(fn) for m, fn in hooks.items()]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for xb, _ in TensorLoader(x, torch.zeros(len(x)), batch_size):
            model(xb.to(device))
            if after_batch is not None:
                after_batch()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


@torch.no_grad()
def activation_thresholds(
    model: nn.Module,
    x: torch.Tensor,
    method: str = "max",
    percentile: float = 99.99,
    batch_size: int = 1000,
    max_values: int = 2_000_000,
    seed: int = 0,
) -> dict[str, Thresholds]:
    """Per-layer thresholds from the activation outputs of ``model`` on inputs ``x``.

    ``method="max"``: ``theta_p`` is the largest positive output, ``theta_n`` the most
    negative one. ``method="percentile"``: the given percentile of the positive outputs
    and of the magnitudes of the negative outputs, estimated on a uniform random
    sample of at most ``max_values`` values per layer and sign.
    """
    if method not in ("max", "percentile"):
        raise ValueError(f"unknown threshold method {method!r}; choose 'max' or 'percentile'")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
    model, layers = activation_sites(model)
    g = torch.Generator().manual_seed(seed)
    stats = {name: {"max": 0.0, "min": 0.0, "pos": [], "neg": [], "n": 0} for name in layers}
    keep = max_values / max(1, len(x))  # values kept per sample and sign, on average

    def hook(name):
        def fn(_m, _inp, out):
            s = stats[name]
            flat = out.detach().flatten().float().cpu()
            s["max"] = max(s["max"], float(flat.max()))
            s["min"] = min(s["min"], float(flat.min()))
            if method == "percentile":
                per_sample = flat.numel() / len(out)
                prob = min(1.0, keep / per_sample)
                pick = torch.rand(flat.numel(), generator=g) < prob
                vals = flat[pick]
                s["pos"].append(vals[vals > 0])
                s["neg"].append(-vals[vals < 0])

        return fn

    run_hooked(model, x, {m: hook(name) for name, m in layers.items()}, batch_size)

    result = {}
    for name, m in layers.items():
        s = stats[name]
        signed = isinstance(m, nn.LeakyReLU) or getattr(m, "theta_n", None) is not None
        if method == "max":
            tp, tn = s["max"], s["min"]
        else:
            pos = torch.cat(s["pos"]) if s["pos"] else torch.zeros(0)
            neg = torch.cat(s["neg"]) if s["neg"] else torch.zeros(0)
            q = percentile / 100
            tp = float(torch.quantile(pos[:16_000_000], q)) if pos.numel() else 0.0
            tn = -float(torch.quantile(neg[:16_000_000], q)) if neg.numel() else 0.0
        if tp <= 0:
            raise ValueError(f"layer {name!r} never produced a positive activation; cannot set theta_p")
        if signed and tn >= 0:
            # No negative value seen: keep a tiny negative range so the neuron stays signed.
            tn = -1e-3 * tp
        result[name] = Thresholds(tp, tn if signed else None)
    return result


# ---------------------------------------------------------------------------
# Per-channel statistics and tail length
# ---------------------------------------------------------------------------


def channel_values(a: torch.Tensor) -> torch.Tensor:
    """Rearrange activations ``[B, C, ...]`` (or ``[B, N]``) to ``[C, samples]``: one row per channel.

    For convolutional layers a channel pools batch and positions; for linear layers each
    neuron is its own channel.
    """
    if a.dim() < 2:
        raise ValueError(f"expected activations of shape [batch, channels, ...], got {tuple(a.shape)}")
    return a.transpose(0, 1).reshape(a.shape[1], -1)


@torch.no_grad()
def layer_statistics(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1000, bins: int = 201, max_values: int = 1_000_000, seed: int = 0
) -> dict[str, dict]:
    """Activation statistics per layer on inputs ``x``.

    For each activation layer: ``max`` and ``min`` output, per-channel maximum magnitude
    (``channel_max``, a ``[C]`` tensor), a random ``sample`` of at most ``max_values``
    outputs (for histograms and percentiles), and ``tail`` = max |a| / 99th percentile of
    |a|: how far the rarest values reach beyond the bulk (1 for no tail).
    """
    model, layers = activation_sites(model)
    g = torch.Generator().manual_seed(seed)
    st = {n: {"max": -float("inf"), "min": float("inf"), "channel_max": None, "sample": []} for n in layers}
    keep = max_values / max(1, len(x))

    def hook(name):
        def fn(_m, _i, out):
            s = st[name]
            a = out.detach().float().cpu()
            s["max"] = max(s["max"], float(a.max()))
            s["min"] = min(s["min"], float(a.min()))
            cm = channel_values(a).abs().amax(1)
            s["channel_max"] = cm if s["channel_max"] is None else torch.maximum(s["channel_max"], cm)
            flat = a.flatten()
            pick = torch.rand(flat.numel(), generator=g) < min(1.0, keep * len(a) / flat.numel())
            s["sample"].append(flat[pick])

        return fn

    run_hooked(model, x, {m: hook(n) for n, m in layers.items()}, batch_size)
    for s in st.values():
        s["sample"] = torch.cat(s["sample"])
        mags = s["sample"].abs()
        p99 = float(torch.quantile(mags[:16_000_000], 0.99)) if mags.numel() else 0.0
        s["tail"] = max(abs(s["max"]), abs(s["min"])) / p99 if p99 > 0 else float("inf")
    return st


# ---------------------------------------------------------------------------
# Variance penalty (eqs. 23 and 31)
# ---------------------------------------------------------------------------


def variance_penalty(a: torch.Tensor, eps: float = 1e-3, magnitude: bool = True) -> torch.Tensor:
    """``eta = mean over channels of sigma^3 / (|m| + eps)^3`` (eq. 23).

    ``a`` is ``[B, C, ...]`` or ``[B, N]``; sigma and m are each channel's standard
    deviation and mean. With ``magnitude=True`` (the default for activations) they are
    taken of ``|a|``: Leaky-ReLU outputs are signed, and a channel whose signed mean is
    near zero would make eta explode and the penalty chase the mean instead of the tail.
    ``eta`` is invariant to scaling ``a`` (up to ``eps``) and grows with tail length.
    """
    return channel_eta(a, eps, magnitude).mean()


def bn_variance_penalty(bn: nn.modules.batchnorm._BatchNorm, eps: float = 1e-3, magnitude: bool = True) -> torch.Tensor:
    """eta read from batch norm parameters: each channel's output has mean ``beta`` and
    standard deviation ``|gamma|`` (in training mode, exactly).

    ``magnitude=False``: ``mean_c |gamma|^3 / (|beta| + eps)^3``, the paper's form; it
    agrees with ``variance_penalty(bn_output, eps, magnitude=False)``. These are signed
    pre-activations, so a channel with ``beta`` near 0 makes eta explode (a freshly
    initialised BN, ``gamma = 1, beta = 0``, gives 1e9 with ``eps = 1e-3``) and the few such
    channels dominate the mean and the gradient.

    ``magnitude=True`` (the default) guards this the way :func:`variance_penalty` does for
    activations: sigma and m are those of ``|y|`` rather than ``y``, computed in closed form
    for a normal ``y ~ N(beta, gamma^2)`` (the folded normal). Then eta is at most
    ``(pi/2 - 1)^(3/2) = 0.43`` (at ``beta = 0``), has no gradient pushing ``beta`` away from 0
    there, and tends to the paper's ``(|gamma|/|beta|)^3`` once ``|beta| >> |gamma|``. It
    agrees with ``variance_penalty(bn_output, eps)`` as far as the output is normal.
    """
    g, b = bn.weight.abs(), bn.bias
    if not magnitude:
        return (g / (b.abs() + eps)).pow(3).mean()
    bmag = b.abs()
    z = bmag / (g.clamp_min(1e-12) * math.sqrt(2.0))
    # E|y| = |beta| + d with d = |gamma| sqrt(2/pi) exp(-z^2) - |beta| erfc(z) >= 0; written
    # this way Var|y| = gamma^2 - d (2|beta| + d) does not cancel when |beta| >> |gamma|.
    d = g * math.sqrt(2.0 / math.pi) * torch.exp(-z * z) - bmag * torch.special.erfc(z)
    d = d.clamp_min(0.0)
    # (the floor keeps sqrt's gradient finite for a channel with gamma = 0, e.g. a zero-initialised BN)
    var = (g * g - d * (2 * bmag + d)).clamp_min(1e-30)
    return (var.sqrt() / (bmag + d + eps)).pow(3).mean()


class VariancePenalty:
    """Collects activation outputs during the forward pass and returns ``lambda1 * eta``.

    Use as ``extra_loss`` of :func:`negspike.train.train_ann`. ``eta`` averages the
    per-layer penalties; ``lambda1 = weight * |CE| / eta`` is computed detached (eq. 31),
    so the penalty's value is always ``weight * CE`` and only its direction is learned.
    With ``use_bn=True`` eta is read from the BatchNorm layers instead (VGG, ResNet).
    """

    def __init__(self, model: nn.Module, eps: float = 1e-3, weight: float = 0.1, use_bn: bool = False) -> None:
        self.eps, self.weight, self.use_bn = eps, weight, use_bn
        self.outputs: dict[str, torch.Tensor] = {}
        self.last: dict[str, float] = {}
        self.handles = []
        if use_bn:
            self.bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
            if not self.bns:
                raise ValueError("use_bn=True but the model has no BatchNorm layers")
        else:
            for name, m in activation_layers(model).items():
                self.handles.append(m.register_forward_hook(self._store(name)))

    def _store(self, name):
        def fn(_m, _i, out):
            self.outputs[name] = out

        return fn

    def etas(self) -> dict[str, torch.Tensor]:
        if self.use_bn:
            return {n: bn_variance_penalty(m, self.eps) for n, m in self.bns.items()}
        return {n: variance_penalty(a, self.eps) for n, a in self.outputs.items()}

    def __call__(self, model: nn.Module, logits: torch.Tensor, ce: torch.Tensor) -> torch.Tensor:
        etas = self.etas()
        eta = torch.stack(list(etas.values())).mean()
        self.last = {n: e.item() for n, e in etas.items()}
        lam = (self.weight * ce.abs() / eta).detach()
        self.outputs = {}
        return lam * eta

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


# ---------------------------------------------------------------------------
# Trainable clipping (Ho and Chang 2021; eq. 24)
# ---------------------------------------------------------------------------


class TrainableClip(nn.Module):
    """``clamp(LeakyReLU_alpha(z), theta_n, theta_p)`` with ``theta_p``, ``theta_n`` trainable.

    ``alpha = 0`` gives a clipped ReLU (no ``theta_n``). The gradient reaches a threshold
    only from the values it clips. Call :meth:`project_` after each optimiser step to
    keep ``theta_p > 0 > theta_n``.
    """

    def __init__(self, alpha: float, theta_p: float, theta_n: float | None = None, min_abs: float = 1e-3) -> None:
        super().__init__()
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.min_abs = float(min_abs)
        Thresholds(theta_p, theta_n if alpha > 0 else None)  # validates signs
        self.theta_p = nn.Parameter(torch.tensor(float(theta_p)))
        self.theta_n = nn.Parameter(torch.tensor(float(theta_n))) if alpha > 0 else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = nn.functional.leaky_relu(z, self.alpha) if self.alpha > 0 else torch.relu(z)
        a = torch.minimum(a, self.theta_p)
        if self.theta_n is not None:
            a = torch.maximum(a, self.theta_n)
        return a

    @torch.no_grad()
    def project_(self) -> None:
        self.theta_p.clamp_(min=self.min_abs)
        if self.theta_n is not None:
            self.theta_n.clamp_(max=-self.min_abs)

    def thresholds(self) -> Thresholds:
        return Thresholds(self.theta_p.item(), self.theta_n.item() if self.theta_n is not None else None)

    def extra_repr(self) -> str:
        tn = f"{self.theta_n.item():.4g}" if self.theta_n is not None else None
        return f"alpha={self.alpha}, theta_p={self.theta_p.item():.4g}, theta_n={tn}"


def add_clipping(model: nn.Module, thresholds: dict[str, Thresholds]) -> nn.Module:
    """A copy of ``model`` with every ReLU / Leaky ReLU replaced by a :class:`TrainableClip`.

    The copy is the canonical form of :func:`activation_sites`, so activations written as
    functions and each call site of a reused activation get their own clipping layer.
    """
    model, layers = activation_sites(model)  # a copy, one module per activation call site
    for name, act in layers.items():
        if isinstance(act, TrainableClip):
            continue
        th = thresholds[name]
        alpha = act.negative_slope if isinstance(act, nn.LeakyReLU) else 0.0
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, TrainableClip(alpha, th.theta_p, th.theta_n if alpha > 0 else None))
    return model


def clip_l2(model: nn.Module) -> torch.Tensor:
    """``sum over clipping layers of theta_p^2 + theta_n^2`` (eq. 24)."""
    terms = []
    for m in model.modules():
        if isinstance(m, TrainableClip):
            terms.append(m.theta_p.pow(2))
            if m.theta_n is not None:
                terms.append(m.theta_n.pow(2))
    if not terms:
        raise ValueError("the model has no TrainableClip layers")
    return torch.stack(terms).sum()


def learned_thresholds(model: nn.Module) -> dict[str, Thresholds]:
    """Thresholds of every :class:`TrainableClip` layer, by qualified name."""
    th = {n: m.thresholds() for n, m in model.named_modules() if isinstance(m, TrainableClip)}
    if not th:
        raise ValueError("the model has no TrainableClip layers; use activation_thresholds instead")
    return th


# ---------------------------------------------------------------------------
# Per-channel views used by the threshold chapters (long tails, variance penalty)
# ---------------------------------------------------------------------------


@torch.no_grad()
def channel_samples(
    model: nn.Module,
    x: torch.Tensor,
    layers: list[str] | None = None,
    per_channel: int = 50_000,
    batch_size: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, torch.Tensor]]:
    """Outputs of each channel of the chosen activation layers on inputs ``x``.

    Returns ``{layer: {"values": [C, n], "max": [C], "min": [C]}}``: a uniform random
    sample of about ``per_channel`` outputs per channel (the same positions for every
    channel of a layer, all of them when there are fewer) and each channel's exact largest
    and smallest output over all of ``x``. Each layer draws its positions from its own
    generator seeded by ``seed`` and the layer's index, so two models of the same
    architecture are sampled at the same positions.
    """
    model, found = activation_sites(model)
    names = list(found) if layers is None else list(layers)
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"no activation layers {missing}; the model has {list(found)}")
    if per_channel < 1:
        raise ValueError(f"per_channel must be >= 1, got {per_channel}")
    order = list(found)
    gens = {n: torch.Generator().manual_seed(seed + order.index(n)) for n in names}
    st = {n: {"values": [], "max": None, "min": None} for n in names}

    def hook(name):
        def fn(_m, _i, out):
            s = st[name]
            v = channel_values(out.detach().float().cpu())
            hi, lo = v.amax(1), v.amin(1)
            s["max"] = hi if s["max"] is None else torch.maximum(s["max"], hi)
            s["min"] = lo if s["min"] is None else torch.minimum(s["min"], lo)
            per_sample = v.shape[1] / len(out)
            prob = min(1.0, per_channel / (per_sample * len(x)))
            pick = torch.rand(v.shape[1], generator=gens[name]) < prob
            s["values"].append(v[:, pick])

        return fn

    run_hooked(model, x, {found[n]: hook(n) for n in names}, batch_size)
    return {n: {"values": torch.cat(s["values"], 1), "max": s["max"], "min": s["min"]} for n, s in st.items()}


def channel_tails(
    values: torch.Tensor, q: float = 99.0, side: str = "abs", extreme: torch.Tensor | None = None
) -> torch.Tensor:
    """Tail length of each channel: largest magnitude / ``q``-th percentile of the magnitudes.

    ``values`` is ``[C, n]`` (one row per channel, see :func:`channel_values`). ``side``
    chooses the values: ``"abs"`` all of them, ``"pos"`` the positive ones, ``"neg"`` the
    magnitudes of the negative ones. ``extreme`` (``[C]``, optional) replaces the sample's
    largest magnitude, e.g. the exact per-channel maximum of :func:`channel_samples`.
    A channel without values on that side (or a zero percentile) gets NaN. The result is
    at least 1 wherever it is defined.
    """
    if side not in ("abs", "pos", "neg"):
        raise ValueError(f"unknown side {side!r}; choose 'abs', 'pos' or 'neg'")
    if not 0 < q <= 100:
        raise ValueError(f"q must lie in (0, 100], got {q}")
    if values.dim() != 2:
        raise ValueError(f"expected values of shape [channels, samples], got {tuple(values.shape)}")
    v = values.double()
    if side == "abs":
        mags = v.abs()
    elif side == "pos":
        mags = torch.where(v > 0, v, torch.full_like(v, float("nan")))
    else:
        mags = torch.where(v < 0, -v, torch.full_like(v, float("nan")))
    pct = torch.nanquantile(mags, q / 100, dim=1)
    top = torch.nan_to_num(mags, nan=-float("inf")).amax(1)
    if extreme is not None:
        top = torch.maximum(top, extreme.double().abs())
    tail = top / pct
    bad = ~(pct > 0) | ~torch.isfinite(top)
    return torch.where(bad, torch.full_like(tail, float("nan")), tail).float()


def channel_eta(a: torch.Tensor, eps: float = 1e-3, magnitude: bool = True) -> torch.Tensor:
    """Per-channel ``sigma^3 / (|m| + eps)^3`` of eq. 23, shape ``[C]``.

    :func:`variance_penalty` is the mean of this over the channels; see it for ``magnitude``.
    """
    v = channel_values(a)
    if magnitude:
        v = v.abs()
    m = v.mean(1)
    sigma = v.std(1, unbiased=False)
    return (sigma / (m.abs() + eps)).pow(3)


@torch.no_grad()
def layer_eta(
    model: nn.Module, x: torch.Tensor, eps: float = 1e-3, magnitude: bool = True, batch_size: int = 128
) -> dict[str, float]:
    """eta of each activation layer, averaged over mini-batches of ``x`` (eval mode).

    This is what :class:`VariancePenalty` measures per batch during fine-tuning, without
    the parameter updates in between: use it for the eta of a model before or after
    fine-tuning. (For models with batch norm the training-mode statistics differ.)
    """
    model, layers = activation_sites(model)
    etas: dict[str, list[float]] = {n: [] for n in layers}

    def hook(name):
        return lambda _m, _i, o: etas[name].append(variance_penalty(o, eps, magnitude).item())

    run_hooked(model, x, {m: hook(n) for n, m in layers.items()}, batch_size)
    return {n: sum(v) / len(v) for n, v in etas.items()}


def range_usage(values: torch.Tensor, th: Thresholds, T: int | None = None) -> dict[str, float]:
    """How much of the rate range ``[theta_n, theta_p]`` a layer's activations use.

    ``values`` is a sample of the layer's outputs (any shape). Returns ``pos_usage``, the
    mean of ``min(a, theta_p) / theta_p`` over the positive values, ``neg_usage``, the mean
    of ``max(a, theta_n) / theta_n`` over the negative values (NaN without such values or
    without ``theta_n``), ``clipped``, the share of values beyond a threshold, and with
    ``T`` given, ``below_one_spike``: the share of non-zero values smaller in magnitude than
    one spike's worth ``theta / T``, which a rate over ``T`` steps rounds to zero.
    """
    a = values.detach().flatten().double()
    pos, neg = a[a > 0], a[a < 0]
    res = {"pos_usage": float((pos.clamp(max=th.theta_p) / th.theta_p).mean()) if pos.numel() else float("nan")}
    if th.theta_n is not None and neg.numel():
        res["neg_usage"] = float((neg.clamp(min=th.theta_n) / th.theta_n).mean())
        n_clip = int((neg < th.theta_n).sum())
    else:
        res["neg_usage"] = float("nan")
        n_clip = 0
    res["clipped"] = (int((pos > th.theta_p).sum()) + n_clip) / max(1, a.numel())
    if T is not None:
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        small = int((pos < th.theta_p / T).sum())
        if th.theta_n is not None:
            small += int((neg > th.theta_n / T).sum())
        res["below_one_spike"] = small / max(1, pos.numel() + neg.numel())
    return res
