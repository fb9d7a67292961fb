"""The converter's view of a network: its traced graph, one module per activation call site.

:func:`canonical` traces a model with ``torch.fx`` and rewrites the graph so that

* every activation, whether a module (``nn.ReLU``, ``nn.LeakyReLU``, a clipping layer) or a
  function in ``forward`` (``F.relu``, ``F.leaky_relu``, ``torch.relu``, ``x.relu()``, their
  in-place forms), is a module of its own, with its own name: a module called at two places
  (torchvision's ``BasicBlock`` calls ``self.relu`` twice) becomes two modules, ``relu`` and
  ``relu_1``, so that each call site gets its own thresholds, statistics and membrane;
* batch norm is folded into the convolution or linear layer that feeds it, wherever that
  is in the graph (PyTorch's ``fuse_conv_bn_eval`` / ``fuse_linear_bn_eval``);
* every other operation is checked against the registry :data:`RULES` of what keeps rates
  intact; anything else raises :class:`UnsupportedLayerError` naming the node, its
  operation and what to use instead. Nothing is converted silently wrong.

Threshold statistics, clipping, conversion and calibration all work on this canonical
form, so the names of thresholds and neurons line up. A model that ``torch.fx`` cannot
trace (data-dependent control flow in ``forward``) falls back to the module tree, with a
warning that says why tracing failed and what the fallback cannot see.
"""
from __future__ import annotations

import copy
import operator
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

__all__ = ["UnsupportedLayerError", "Rule", "RULES", "canonical", "supported_ops_table", "fold_bn_tree"]


class UnsupportedLayerError(TypeError):
    """The converter met an operation it cannot turn into a rate-preserving SNN operation."""


@dataclass(frozen=True)
class Rule:
    """How the converter treats a group of operations.

    ``kind`` is one of ``"synapse"`` (kept, carries weights), ``"activation"`` (becomes a
    spiking neuron), ``"linear"`` (kept: linear in its input, so it maps rates to rates),
    ``"fold"`` (batch norm, folded into the synapse before it), ``"shape"`` (bookkeeping on
    shapes) or ``"unsupported"``. ``note`` says how it is converted or, when unsupported,
    what to use instead. ``check``, for a kept operation, returns what is wrong with one
    call's arguments (or None).
    """

    kind: str
    label: str
    modules: tuple[type, ...] = ()
    functions: tuple[Callable, ...] = ()
    methods: tuple[str, ...] = ()
    note: str = ""
    # for kept operations that are rate-preserving only with some arguments: the problem, or None
    check: Callable[[fx.Node], str | None] | None = None


_MAX_POOL = "max pooling of spike trains is not the spike train of the max pooling: use nn.AvgPool2d / nn.AdaptiveAvgPool2d (F.avg_pool2d)"
_OTHER_ACT = "the spiking neurons decode (Leaky) ReLU only: replace it by nn.LeakyReLU or nn.ReLU and retrain"
_CLIP_ACT = "use nn.ReLU / nn.LeakyReLU: the clipping comes from the neurons' thresholds (activation_thresholds or trainable clipping)"
_SOFTMAX = "remove it from the model: the read-out takes the arg-max of the accumulated output, apply softmax after simulate()"
_PRODUCT = "a product of two signals is not rate-preserving (the mean of a product is not the product of the means): no gates or attention"
_NORM = "normalisation by each sample's current values is not rate-preserving: use BatchNorm right after a Conv2d/Linear, which is folded"

def _constant_scaling(node: fx.Node) -> str | None:
    tensors = [a for a in node.args if isinstance(a, fx.Node) and a.op != "get_attr"]  # parameters are constants
    if len(tensors) > 1:
        return _PRODUCT
    if node.target in (operator.truediv, "div") and not isinstance(node.args[0], fx.Node):
        return "dividing by a signal is not rate-preserving"
    return None


def _channel_concat(node: fx.Node) -> str | None:
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    if dim != 1:
        return f"concatenation along dimension {dim}; only dimension 1 (channels) keeps time and batch apart"
    return None


def _non_batch_mean(node: fx.Node) -> str | None:
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if dim is None or 0 in dims:
        return "a mean over the batch dimension mixes samples and time steps; average over dimensions >= 1"
    return None


def _shape_index(node: fx.Node) -> str | None:
    src = node.args[0] if node.target is operator.getitem else None
    if isinstance(src, fx.Node) and not (src.op == "call_method" and src.target == "size") and not (
            src.op == "call_function" and src.target is getattr):
        return "indexing a tensor; only indexing of sizes and shapes is supported"
    return None


_ACTIVATION = Rule("activation", "ReLU, Leaky ReLU, clipping layers with theta_p (modules)", (nn.ReLU, nn.LeakyReLU),
                   note="a spiking neuron per call site (IF for ReLU, signed for Leaky ReLU)")

RULES: tuple[Rule, ...] = (
    Rule("synapse", "convolution and linear layer", (nn.Conv2d, nn.Linear),
         note="kept; the weights act on spikes (time folded into the batch)"),
    _ACTIVATION,
    Rule("activation", "ReLU, Leaky ReLU (functions and methods)", (),
         (F.relu, F.relu_, torch.relu, torch.relu_, F.leaky_relu, F.leaky_relu_), ("relu", "relu_"),
         note="replaced by a module of its own, then a spiking neuron"),
    Rule("fold", "batch norm after a convolution or linear layer", (nn.BatchNorm1d, nn.BatchNorm2d),
         note="folded into the weights and bias of the layer before it"),
    Rule("linear", "average pooling", (nn.AvgPool2d, nn.AdaptiveAvgPool2d), (F.avg_pool2d, F.adaptive_avg_pool2d),
         note="kept: averaging is linear"),
    Rule("linear", "flatten, view, reshape", (nn.Flatten,), (torch.flatten,),
         ("view", "reshape", "flatten", "contiguous"), note="kept"),
    Rule("linear", "dropout, identity", (nn.Dropout, nn.Dropout2d, nn.Identity), (F.dropout,), note="identity at inference"),
    Rule("linear", "residual addition, subtraction, negation", (),
         (operator.add, operator.iadd, torch.add, operator.sub, torch.sub, operator.neg), ("add", "add_", "sub"),
         note="kept: sums of rates are rates of sums"),
    Rule("linear", "scaling by a constant", (), (operator.mul, operator.truediv, torch.mul), ("mul", "div"),
         note="kept when one operand is a number (a product of two tensors is unsupported)", check=_constant_scaling),
    Rule("linear", "concatenation along channels", (), (torch.cat,),
         note="kept when along dimension 1 (the batch dimension carries time)", check=_channel_concat),
    Rule("linear", "mean over non-batch dimensions", (), (torch.mean,), ("mean",),
         note="kept: global average pooling written as a mean", check=_non_batch_mean),
    Rule("shape", "sizes and shapes", (), (operator.getitem, getattr), ("size", "dim"),
         note="kept when applied to shapes", check=_shape_index),
    Rule("unsupported", "max pooling", (nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool2d),
         (F.max_pool2d, F.adaptive_max_pool2d), note=_MAX_POOL),
    Rule("unsupported", "other activations",
         (nn.GELU, nn.SiLU, nn.ELU, nn.SELU, nn.CELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Mish, nn.Hardswish,
          nn.Hardsigmoid, nn.PReLU, nn.RReLU, nn.Softsign, nn.Tanhshrink),
         (F.gelu, F.silu, F.elu, F.selu, F.celu, torch.sigmoid, torch.tanh, F.softplus, F.mish, F.hardswish,
          F.hardsigmoid, F.prelu, F.rrelu), ("sigmoid", "tanh"), note=_OTHER_ACT),
    Rule("unsupported", "clipping activations", (nn.ReLU6, nn.Hardtanh),
         (F.relu6, F.hardtanh, torch.clamp, torch.clip), ("clamp", "clip"), note=_CLIP_ACT),
    Rule("unsupported", "softmax", (nn.Softmax, nn.LogSoftmax), (F.softmax, F.log_softmax, torch.softmax),
         ("softmax", "log_softmax"), note=_SOFTMAX),
    Rule("unsupported", "products of signals, attention", (nn.MultiheadAttention, nn.Bilinear),
         (torch.matmul, operator.matmul, torch.bmm, torch.einsum), ("matmul", "bmm"), note=_PRODUCT),
    Rule("unsupported", "per-sample normalisation", (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d, nn.LocalResponseNorm),
         (F.layer_norm, F.group_norm, F.instance_norm), note=_NORM),
)

_FOLDABLE = (nn.BatchNorm1d, nn.BatchNorm2d)


def _is_activation_module(m: nn.Module) -> bool:
    from .activations import is_activation

    return is_activation(m)


def _rule_for(node: fx.Node, modules: dict[str, nn.Module]) -> Rule | None:
    for rule in RULES:
        if node.op == "call_module":
            m = modules[node.target]
            if rule.kind == "activation" and _is_activation_module(m):
                return _ACTIVATION
            if rule.modules and isinstance(m, rule.modules):
                return rule
        elif node.op == "call_function" and node.target in rule.functions:
            return rule
        elif node.op == "call_method" and node.target in rule.methods:
            return rule
    return None


def supported_ops_table() -> list[dict[str, str]]:
    """The registry as rows (kind, operations, how it is converted / what to use instead):
    the book's table of what the converter supports is generated from it."""
    rows = []
    for r in RULES:
        ops = [f"nn.{c.__name__}" for c in r.modules]
        ops += list(dict.fromkeys(_function_name(f) for f in r.functions))  # F.relu_ is torch.relu_
        ops += [f"Tensor.{m}" for m in r.methods]
        rows.append({"kind": r.kind, "what": r.label, "operations": ", ".join(ops), "conversion": r.note})
    return rows


def _function_name(f: Callable) -> str:
    """``F.relu``, ``torch.cat``, ``operator.add``: the name a user writes for ``f``."""
    name = getattr(f, "__name__", repr(f))
    if f is getattr:
        return "getattr"
    if getattr(F, name, None) is f:
        return f"F.{name}"
    if getattr(operator, name, None) is f:
        return f"operator.{name}"
    return f"torch.{name}"


class _Tracer(fx.Tracer):
    """fx tracer that keeps activations (including clipping layers) and neurons as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        from .neurons import SpikingNeuron

        return _is_activation_module(m) or isinstance(m, SpikingNeuron) or super().is_leaf_module(m, qualname)


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"node '{node.name}' (module '{node.target}', {type(modules[node.target]).__name__})"
    if node.op == "call_function":
        return f"node '{node.name}' (function {_function_name(node.target)})"
    return f"node '{node.name}' ({node.op} {node.target})"


def _is_number(a: Any) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool)


def _check_node(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """A one-line problem with ``node`` or None when the converter can handle it."""
    if node.op in ("placeholder", "output", "get_attr"):
        return None
    rule = _rule_for(node, modules)
    what = _describe(node, modules)
    if rule is None:
        return f"{what}: not among the rate-preserving operations the converter knows (see negspike.graph.RULES)"
    if rule.kind == "unsupported":
        return f"{what}: {rule.label}; {rule.note}"
    problem = rule.check(node) if rule.check else None
    return f"{what}: {problem}" if problem else None


def _functional_slope(node: fx.Node) -> float:
    if node.target in (F.leaky_relu, F.leaky_relu_):
        return float(node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01))
    return 0.0


def _owner(node: fx.Node) -> str:
    """Qualified name of the module whose ``forward`` made ``node`` ('' for the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    return list(stack.values())[-1][0]


def _free_name(gm: fx.GraphModule, base: str) -> str:
    taken = dict(gm.named_modules())
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def _in_place(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return bool(getattr(modules[node.target], "inplace", False))
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    return bool(node.kwargs.get("inplace", False)) or name.endswith("_")


def _own_call_sites(gm: fx.GraphModule) -> None:
    """One module per activation call site: functions become modules, reused modules are copied.

    An in-place activation (``inplace=True``, ``relu_``) changed its input tensor in the ANN,
    so later uses of that input are pointed at the activation's output, as eager mode sees it.
    """
    modules = dict(gm.named_modules())
    seen: set[str] = set()
    for node in list(gm.graph.nodes):
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        rule = _rule_for(node, modules)
        if rule is None or rule.kind != "activation":
            continue
        src = node.args[0] if node.args else node.kwargs["input"]
        in_place = _in_place(node, modules)
        site = node
        if node.op == "call_module":
            if node.target in seen:  # a further call site: its own copy
                new = _free_name(gm, node.target)
                gm.add_submodule(new, copy.deepcopy(modules[node.target]))
                node.target = new
            seen.add(node.target)
        else:
            slope = _functional_slope(node)
            owner = _owner(node)
            name = (node.target if isinstance(node.target, str) else node.target.__name__).rstrip("_")
            new = _free_name(gm, f"{owner}.{name}" if owner else name)
            gm.add_submodule(new, nn.LeakyReLU(slope) if slope else nn.ReLU())
            with gm.graph.inserting_before(node):
                site = gm.graph.call_module(new, (src,))
            node.replace_all_uses_with(site)
            gm.graph.erase_node(node)
            seen.add(new)
        if in_place and isinstance(src, fx.Node):
            order = {n: i for i, n in enumerate(gm.graph.nodes)}
            for user in list(src.users):
                if user is not site and order[user] > order[site]:
                    user.replace_input_with(src, site)
        modules = dict(gm.named_modules())


def _fold_batch_norms(gm: fx.GraphModule) -> None:
    """Fold every batch norm into the Conv2d/Linear that alone feeds it; raise for any other."""
    modules = dict(gm.named_modules())
    uses: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            uses[node.target] = uses.get(node.target, 0) + 1
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], _FOLDABLE):
            continue
        bn = modules[node.target]
        src = node.args[0]
        syn = modules.get(src.target) if isinstance(src, fx.Node) and src.op == "call_module" else None
        why = None
        if not isinstance(syn, (nn.Conv2d, nn.Linear)):
            why = "it does not directly follow a Conv2d or Linear"
        elif len(src.users) != 1:
            why = f"the output of '{src.target}' is also used elsewhere, so folding would change those uses"
        elif uses[src.target] != 1:
            why = f"'{src.target}' is called at several places"
        elif uses[node.target] != 1:
            why = "the batch norm is called at several places"
        if why:
            raise UnsupportedLayerError(
                f"cannot fold batch norm {_describe(node, modules)}: {why}; put each BatchNorm right after its own "
                "Conv2d/Linear, whose output only it uses")
        fused = fuse_conv_bn_eval(syn.eval(), bn.eval()) if isinstance(syn, nn.Conv2d) else \
            fuse_linear_bn_eval(syn.eval(), bn.eval())
        parent, _, child = src.target.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, child, fused)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        modules = dict(gm.named_modules())


def _trace(model: nn.Module) -> fx.GraphModule:
    tracer = _Tracer()
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def fold_bn_tree(model: nn.Module) -> nn.Module:
    """Module-tree batch-norm folding (the fallback for models fx cannot trace): a BatchNorm is
    folded when it directly follows a Conv2d or Linear inside an ``nn.Sequential``; any other
    raises :class:`UnsupportedLayerError`. Works in place on ``model``."""
    for parent in model.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for prev, cur in zip(names, names[1:]):
            a, b = parent._modules[prev], parent._modules[cur]
            if isinstance(b, _FOLDABLE) and isinstance(a, (nn.Conv2d, nn.Linear)):
                fuse = fuse_conv_bn_eval if isinstance(a, nn.Conv2d) else fuse_linear_bn_eval
                parent._modules[prev] = fuse(a.eval(), b.eval())
                parent._modules[cur] = nn.Identity()
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise UnsupportedLayerError(
                f"cannot fold batch norm layer '{name}' ({type(m).__name__}): it does not directly follow "
                "a Conv2d or Linear inside an nn.Sequential (module-tree fallback; the traced graph could fold more)")
    return model


def _check_tree(model: nn.Module) -> None:
    """The fallback's check: every leaf module is one the converter knows."""
    from .neurons import SpikingNeuron

    for name, m in model.named_modules():
        if len(m._modules) or isinstance(m, SpikingNeuron) or _is_activation_module(m):
            continue
        rule = next((r for r in RULES if r.modules and isinstance(m, r.modules)), None)
        if rule is None or rule.kind == "unsupported":
            note = rule.note if rule else "not among the rate-preserving operations the converter knows"
            raise UnsupportedLayerError(f"cannot convert layer '{name}' ({type(m).__name__}): {note}")


def canonical(model: nn.Module, fold_bn: bool = True, check: bool = True) -> nn.Module:
    """A copy of ``model`` (eval mode) in the converter's canonical form (see the module docstring).

    ``fold_bn=False`` keeps batch norm (for statistics and trainable clipping, which train
    the copy). With ``check`` every operation is checked against :data:`RULES`, and all the
    problems found are raised together in one :class:`UnsupportedLayerError`.
    Models that fx cannot trace fall back to the module tree with a warning.
    """
    model = copy.deepcopy(model)
    was_training = model.training
    try:
        gm = _trace(model)
    except Exception as err:  # fx raises several types for untraceable Python
        warnings.warn(
            f"torch.fx could not trace {type(model).__name__} ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "converting by walking the module tree instead. This fallback cannot see activations called as "
            "functions in forward (F.relu, torch.relu, x.relu()), which would stay analog, nor an activation "
            "module called at several places, whose call sites would share one neuron: make forward traceable "
            "(no Python control flow on tensor values) to have them checked.", stacklevel=2)
        if check:
            _check_tree(model)
        model = fold_bn_tree(model.eval()) if fold_bn else model
        return model.train(was_training and not fold_bn)
    if check:
        modules = dict(gm.named_modules())
        problems = [p for p in (_check_node(n, modules) for n in gm.graph.nodes) if p]
        if problems:
            raise UnsupportedLayerError("cannot convert " + type(model).__name__ + ":\n  " + "\n  ".join(problems))
    _own_call_sites(gm)
    if fold_bn:
        gm.eval()
        _fold_batch_norms(gm)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm.train(was_training and not fold_bn)
