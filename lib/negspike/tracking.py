"""The book's own neurons (not the paper's): they track the output they owe.

:class:`TrackingNeuron` and :class:`PairTrackingNeuron` decode
``clip(LeakyReLU_alpha(mean input), theta_n, theta_p)`` for fluctuating inputs too, where
the paper's :class:`~negspike.neurons.SignedIFNeuron` is exact only for a constant input
(DESIGN.md 4.11-4.12). :func:`make_neuron` builds any neuron of the library by kind name
(:data:`NEURON_KINDS`), as the converter does.
"""
from __future__ import annotations

import torch

from .kernels import _pair_track_and_fire, _TrackingBPTT, _track_and_fire, spike
from .neurons import IBTNeuron, IFNeuron, SignedIFNeuron, SpikingNeuron, _threshold

__all__ = ["TrackingNeuron", "PairTrackingNeuron", "NEURON_KINDS", "make_neuron"]

#
# The paper's signed neuron decodes clip(LeakyReLU(z)) only for a constant input z
# (DESIGN.md 4.11): with a fluctuating input it fires spikes of both signs, and a
# wrong-sign spike is not compensated. The neurons below keep instead the integrated
# input S(t) = v0 + z_1 + ... + z_t and the output C(t) they have already sent, and fire
# so that C(t) follows the target
#
#     X(t) = clip(LeakyReLU_alpha(S(t)), t * theta_n, t * theta_p).
#
# LeakyReLU is positively homogeneous, so X(T) / T = clip(LeakyReLU_alpha(mean input),
# theta_n, theta_p) whatever the order of the inputs: the decoded output C(T) / T misses
# it by |X(T) - C(T)| / T, the output still owed at the end. The clip by t * theta makes
# the target reachable with one spike per step. The bounds below hold from S(0) = 0
# (no ``v0``; a ``v0`` acts as an extra first input); the tests check them.
#
# For any input sequence: an account that pays rises of its target with spikes of ``up``
# and falls with spikes of ``down`` (one a step, fired at half a spike) owes at most
# max(U_T, L_T), with U_t = max(m/2, U_{t-1} + dX_t - up), L_t = max(m/2, L_{t-1} - dX_t - down),
# m = max(up, down): queues that drain by one spike a step. They stay at m/2 while one
# spike can pay every step's change (the classes stated in the docstrings); otherwise the
# error is a lag, which fluctuation around a mean keeps bounded, so it shrinks as 1/T.


def _check_rounding(v_init: float) -> float:
    if not 0.0 <= v_init <= 0.5:
        raise ValueError(
            f"v_init of a tracking neuron is the rounding fraction in [0, 0.5] (0.5 rounds, 0 floors), got {v_init}"
        )
    return 1.0 - v_init


class _OwedOutputNeuron(SpikingNeuron):
    """Shared machinery of the book's tracking neurons (not the paper's).

    State: the integrated input ``v`` (= S(t), in input units, so that a membrane offset
    ``v0`` means what it means for the paper's neuron: ``delta`` adds ``delta / T`` to the
    decoded mean input), the output sent and the step count ``t`` since :meth:`reset`.
    ``v_init`` here is the *rounding fraction*: a spike of value ``theta`` fires once the
    owed output reaches ``(1 - v_init) * |theta|``, on both sides. For an IF neuron
    ``v(0) = v_init * P_th`` does the same on the positive side only; 0.5 (the default)
    rounds both sides, 0 floors towards zero.
    """

    def __init__(self, theta_p, theta_n, alpha: float, v_init: float = 0.5, kappa: float = 6.7) -> None:
        self._fraction = _check_rounding(v_init)
        super().__init__(v_init=v_init, kappa=kappa)
        self.alpha = float(alpha)
        self.theta_p = _threshold(theta_p, "theta_p")
        if (self.theta_p <= 0).any():
            raise ValueError(f"theta_p must be > 0, got {theta_p}")
        if theta_n is None:
            if self.alpha != 0.0:
                raise ValueError("a Leaky-ReLU neuron (alpha > 0) needs a negative threshold theta_n < 0")
            self.theta_n = None
        else:
            if not 0.0 < self.alpha < 1.0:
                raise ValueError(f"Leaky-ReLU slope alpha must lie in (0, 1), got {alpha}")
            self.theta_n = _threshold(theta_n, "theta_n")
            if (self.theta_n >= 0).any():
                raise ValueError(f"theta_n must be < 0 (the negative clipping threshold), got {theta_n}")

    def reset(self) -> None:
        super().reset()
        self.t = 0  # steps since reset: the clip of the target grows with it
        self.c: torch.Tensor | None = None

    @property
    def p_th(self) -> torch.Tensor:
        return self.theta_p

    @property
    def pos_value(self) -> torch.Tensor:
        return self.theta_p

    @property
    def n_th(self) -> torch.Tensor | None:
        """``theta_n / alpha``: the input that the negative clip corresponds to (as ``N_th``)."""
        return None if self.theta_n is None else self.theta_n / self.alpha

    @property
    def neg_value(self) -> torch.Tensor | None:
        return self.theta_n

    def initial_membrane(self, like: torch.Tensor) -> torch.Tensor:
        """``S(0) = v0`` (zeros without it); ``v_init`` is the rounding, not an offset."""
        v = torch.zeros_like(like)
        if self.v0 is not None:
            v = v + self.v0
        return v

    def _floats(self) -> tuple:
        """Scalar thresholds as Python floats, computed in float32 like the autograd path."""
        signed = self.theta_n is not None
        tp = self.theta_p.item()
        tn = self.theta_n.item() if signed else None
        lo = self.n_th.item() if signed else None
        h_p = (self._fraction * self.theta_p).item()
        return tp, tn, lo, h_p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cur = self._currents(x)
        steps = cur.shape[0]
        if self.v is None:
            self.v = self.initial_membrane(cur[0])
            self._init_outputs(self.v)
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        scalar = self.theta_p.dim() == 0 and (self.theta_n is None or self.theta_n.dim() == 0)
        if needs_grad or not scalar:
            out, counts = self._run_autograd(cur)
        else:
            out, counts = self._run_fast(cur)
        if counts is not None:
            self._add_counts(*counts, out.numel())
        self.t += steps
        return out.reshape(steps * cur.shape[1], *cur.shape[2:])

    def _init_outputs(self, v: torch.Tensor) -> None:
        self.c = torch.zeros_like(v)

    def extra_repr(self) -> str:
        tn = None if self.theta_n is None else self.theta_n.tolist()
        return f"theta_p={self.theta_p.tolist()}, theta_n={tn}, alpha={self.alpha}, v_init={self.v_init}"


class TrackingNeuron(_OwedOutputNeuron):
    """The book's tracking neuron (this project's own, not the paper's): one output account.

    Keeps ``S(t)`` and the output sent ``C(t)``; owes ``u = X(t) - C(t)`` with
    ``X(t) = clip(LeakyReLU_alpha(S(t)), t theta_n, t theta_p)`` and fires, at most once a
    step, ``+theta_p`` when ``u >= h theta_p`` or ``theta_n`` when ``u <= h theta_n``
    (``h = 1 - v_init``; 0.5 rounds). Spikes carry the same two values as the paper's
    neuron, so the next layer is unchanged.

    Bound (``v_init = 0.5``, ``v0`` unset): if every step's change of the target lies in
    ``[theta_n, theta_p]`` (one spike can pay it), the owed output stays in
    ``[-m/2, m/2]`` with ``m = max(theta_p, |theta_n|)``, so the decoded output is within
    ``m / (2T)`` of ``clip(LeakyReLU_alpha(mean input), theta_n, theta_p)`` for *any* order
    of the inputs. A constant input is in this class. Outside it the error is the output
    still owed at ``T``, divided by ``T``: it shrinks as ``1/T`` when the target's changes
    are paid on average (fluctuation around a mean), but retracting positive output goes
    at only ``|theta_n|`` per step: after a fall of the input it lags.

    On a small positive input it pays back the rounding residual of a ``+theta_p`` spike
    with ``theta_n`` spikes (about 2.5% of its spikes at T = 32 over inputs in [-3, 1.5],
    theta_p = 1, theta_n = -0.1, alpha = 0.1): the price of one account for both signs.

    Costs: two state tensors (``S``, ``C``) and a step counter, two spike types, 9 passes
    per step in the fast path against the paper neuron's 7 (``benchmarks/bench_neurons.py``
    measured 1.04-1.11x the paper neuron's CPU time for a Net4 simulation, 1.26-1.5x for one
    neuron layer alone, on a shared 2-core CPU). BPTT with fixed scalar thresholds is
    written out (two saved tensors per step); trainable or per-channel thresholds use the
    step-by-step autograd loop. With ``theta_n=None``
    (ReLU, ``alpha = 0``) it never fires negative spikes and behaves like an IF neuron
    with ``v_init = 0.5`` whose target is also clipped at ``t theta_p``.
    """

    def __init__(self, theta_p, theta_n=None, alpha: float = 0.0, v_init: float = 0.5, kappa: float = 6.7) -> None:
        super().__init__(theta_p, theta_n, alpha, v_init=v_init, kappa=kappa)

    def _run_fast(self, cur: torch.Tensor):
        tp, tn, lo, h_p = self._floats()
        h_n = (self._fraction * self.theta_n.abs()).item() if tn is not None else None
        out, self.v, self.c, counts = _track_and_fire(
            cur, self.v, self.c, self.t, tp, tn, lo, h_p, h_n, self.alpha, count=self.count_spikes,
            out=self._output_memory(self.v, cur.shape[0]))
        return out, counts

    def _run_autograd(self, cur: torch.Tensor):
        """Differentiable run: the written-out BPTT for fixed scalar thresholds, else
        :meth:`_run_steps`."""
        fixed = not any(p.requires_grad for p in (self.theta_p, self.theta_n) if p is not None)
        if fixed and self.theta_p.dim() == 0 and (self.theta_n is None or self.theta_n.dim() == 0):
            tp, tn, lo, h_p = self._floats()
            h_n = (self._fraction * self.theta_n.abs()).item() if tn is not None else None
            out, self.v, self.c, counts = _TrackingBPTT.apply(
                cur, self.v, self.c, self.t, tp, tn, lo, h_p, h_n, self.alpha, self.kappa, self.count_spikes)
            return out, (tuple(int(x) for x in counts.tolist()) if self.count_spikes else None)
        return self._run_steps(cur)

    def _run_steps(self, cur: torch.Tensor):
        """Step-by-step autograd with the surrogate ``spike``; thresholds may be tensors."""
        s, c = self.v, self.c
        h = self._fraction
        pos_n = neg_n = 0
        outs = []
        for t in range(cur.shape[0]):
            n = self.t + t + 1
            s = s + cur[t]
            if self.theta_n is None:
                x = torch.clamp(s, min=torch.zeros_like(self.theta_p), max=n * self.theta_p)
            else:
                x = torch.clamp(s, min=n * self.n_th, max=n * self.theta_p)
                x = torch.nn.functional.leaky_relu(x, self.alpha)
            u = x - c
            pos = spike(u - h * self.theta_p, self.kappa)
            out = pos * self.theta_p
            pos_n = pos_n + pos.detach().sum(dtype=torch.float64)
            if self.theta_n is not None:
                neg = spike(h * self.theta_n - u, self.kappa)
                out = out + neg * self.theta_n
                neg_n = neg_n + neg.detach().sum(dtype=torch.float64)
            c = c + out
            outs.append(out)
        self.v, self.c = s, c
        counts = (int(pos_n), int(neg_n)) if self.count_spikes else None
        return torch.stack(outs), counts


class PairTrackingNeuron(_OwedOutputNeuron):
    """The book's pair of tracking units (this project's own reading of eqs. 19-20).

    A positive unit owes ``u_p = clip(S, 0, t theta_p) - C_p`` and fires ``+theta_p`` or
    retracts with ``-theta_p``; a negative unit owes
    ``u_n = alpha clip(S, t theta_n / alpha, 0) - C_n`` and fires ``theta_n`` or retracts
    with ``-theta_n = |theta_n|``; each fires when its owed output reaches ``h`` times its
    spike value (``h = 1 - v_init``; 0.5 rounds). The output is the sum of the two, so
    the targets add up to ``clip(LeakyReLU_alpha(S), t theta_n, t theta_p)``. Each sign
    retracts at its own scale: positive output goes back ``theta_p`` per step.

    Bound (``v_init = 0.5``, ``v0`` unset): if every step changes the positive target by at
    most ``theta_p`` and the negative one by at most ``|theta_n|`` (sufficient:
    ``|z_t| <= min(theta_p, |theta_n| / alpha)``), each unit owes at most half its spike,
    so the decoded output is within ``(theta_p + |theta_n|) / (2T)`` of
    ``clip(LeakyReLU_alpha(mean input), theta_n, theta_p)`` for any order of the inputs
    (the other unit may hold a residual of half a spike, hence the sum). A constant input
    is in the class (only one unit is then ever active: ``max(theta_p, |theta_n|)/(2T)``).

    Costs: three state tensors (``S``, ``C_p``, ``C_n``) and a step counter, four spike
    types (two of them retractions, counted by their sign), up to two spikes per step
    (one per unit), 15 passes per step in the fast path (measured 1.26-1.34x the paper
    neuron's CPU time for a Net4 simulation, about 2x for one neuron layer alone: outside
    the paper neuron's speed class), BPTT through the step-by-step autograd loop. With
    ``theta_n=None``
    (ReLU) only the positive unit exists: it decodes ReLU of the mean for any order of
    inputs, which the IF neuron does not.
    """

    def __init__(self, theta_p, theta_n=None, alpha: float = 0.0, v_init: float = 0.5, kappa: float = 6.7) -> None:
        super().__init__(theta_p, theta_n, alpha, v_init=v_init, kappa=kappa)

    def reset(self) -> None:
        super().reset()
        self.c_n: torch.Tensor | None = None  # negative unit's output, in input units (C_n / alpha)

    def _init_outputs(self, v: torch.Tensor) -> None:
        self.c = torch.zeros_like(v)
        self.c_n = torch.zeros_like(v) if self.theta_n is not None else None

    def _run_fast(self, cur: torch.Tensor):
        tp, tn, lo, h_p = self._floats()
        h_n = (self._fraction * self.n_th.abs()).item() if tn is not None else None
        out, self.v, self.c, self.c_n, counts = _pair_track_and_fire(
            cur, self.v, self.c, self.c_n, self.t, tp, tn, lo, h_p, h_n, count=self.count_spikes,
            out=self._output_memory(self.v, cur.shape[0]))
        return out, counts

    def _run_autograd(self, cur: torch.Tensor):
        """Step-by-step autograd with the surrogate ``spike``; thresholds may be tensors."""
        s, cp, cn = self.v, self.c, self.c_n
        h = self._fraction
        zero = torch.zeros_like(self.theta_p)
        pos_n = neg_n = 0
        outs = []
        for t in range(cur.shape[0]):
            n = self.t + t + 1
            s = s + cur[t]
            u = torch.clamp(s, min=zero, max=n * self.theta_p) - cp
            up = spike(u - h * self.theta_p, self.kappa)
            dn = spike(-h * self.theta_p - u, self.kappa)
            out = (up - dn) * self.theta_p
            cp = cp + out
            pos_n = pos_n + up.detach().sum(dtype=torch.float64)
            neg_n = neg_n + dn.detach().sum(dtype=torch.float64)
            if self.theta_n is not None:
                n_th = self.n_th
                u = torch.clamp(s, min=n * n_th, max=torch.zeros_like(n_th)) - cn
                fire = spike(h * n_th - u, self.kappa)  # u <= -h |N_th|: a spike of value theta_n
                back = spike(u + h * n_th, self.kappa)  # u >= h |N_th|: a retraction, value |theta_n|
                k = fire - back
                cn = cn + k * n_th
                out = out + k * self.theta_n
                pos_n = pos_n + back.detach().sum(dtype=torch.float64)
                neg_n = neg_n + fire.detach().sum(dtype=torch.float64)
            outs.append(out)
        self.v, self.c, self.c_n = s, cp, cn
        counts = (int(pos_n), int(neg_n)) if self.count_spikes else None
        return torch.stack(outs), counts


NEURON_KINDS: tuple[str, ...] = ("signed", "ibt", "if", "tracking", "pair")


def make_neuron(kind: str, theta_p, theta_n: float | None, alpha: float, v_init: float) -> SpikingNeuron:
    """The spiking neuron of one activation layer, as the converter builds it.

    ``"signed"``, ``"ibt"`` and ``"if"`` follow the reproduction's rules: a ReLU layer
    (``alpha == 0``) or ``"if"`` gives :class:`IFNeuron`, ``"ibt"`` :class:`IBTNeuron`,
    ``"signed"`` the paper's :class:`SignedIFNeuron` (needs ``theta_n``). ``"tracking"``
    and ``"pair"`` give the book's own :class:`TrackingNeuron` and
    :class:`PairTrackingNeuron`, also for ReLU layers (``theta_n`` is then ignored: the
    tracking neuron fires only ``+theta_p``, like a rounding IF neuron, while the pair's
    positive unit also retracts with ``-theta_p``). For them ``v_init`` is the rounding
    fraction in ``[0, 0.5]``: pass 0.5 to round both sides (0 floors towards zero).
    """
    if kind not in NEURON_KINDS:
        raise ValueError(f"unknown neuron kind {kind!r}; choose one of {NEURON_KINDS}")
    if kind in ("tracking", "pair"):
        cls = TrackingNeuron if kind == "tracking" else PairTrackingNeuron
        if not alpha:
            return cls(theta_p, None, 0.0, v_init=v_init)
        if theta_n is None:
            raise ValueError(f"the {kind} neuron of a Leaky-ReLU layer needs a negative threshold theta_n < 0")
        return cls(theta_p, theta_n, alpha, v_init=v_init)
    if not alpha or kind == "if":
        return IFNeuron(theta_p, v_init=v_init)
    if kind == "ibt":
        return IBTNeuron(theta_p, alpha, v_init=v_init)
    if theta_n is None:
        raise ValueError("the signed neuron needs a negative threshold theta_n < 0")
    return SignedIFNeuron(theta_p, theta_n, alpha, v_init=v_init)
