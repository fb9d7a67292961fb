"""Spiking neurons: the IF neuron, the signed IF neuron with negative spikes, and IBT.

The book's own neurons, which keep the Leaky ReLU for fluctuating inputs, are in
:mod:`negspike.tracking`; :func:`negspike.tracking.make_neuron` builds any neuron by kind.
The classes here hold the state and the thresholds; their time loops are in
:mod:`negspike.kernels`.

Sign convention (the one the whole library uses; see DESIGN.md 4.1)
------------------------------------------------------------------
A signed neuron has two clipping thresholds measured or learned in the ANN,
``theta_p > 0 > theta_n``, and the Leaky-ReLU slope ``alpha``. Its membrane ``v``
integrates the input current ``z`` (in ANN units) each time step and then

* fires a **positive** spike when ``v >= P_th`` with ``P_th = theta_p``, and subtracts ``P_th``;
* fires a **negative** spike when ``v <= N_th`` with ``N_th = theta_n / alpha < 0``, and adds
  ``|N_th|`` back.

A positive spike reaches the next layer with magnitude ``theta_p``, a negative one with
magnitude ``theta_n``, so the next layer keeps the ANN's weights. Relative to a positive
spike, a negative one is weighted by ``|beta| = alpha * |N_th| / P_th = |theta_n| / theta_p``.
For a constant input ``z`` the decoded output (spike magnitudes summed over ``T`` steps,
divided by ``T``) converges to ``clip(LeakyReLU_alpha(z), theta_n, theta_p)`` with an error
of at most ``max(theta_p, |theta_n|) / T`` (eq. 17 of the paper with consistent signs).

The IBT neuron is the special case ``theta_n = -theta_p`` (``beta = 1``,
``|N_th| = P_th / alpha``); the IF neuron has no negative threshold and decodes ReLU.

Time folding: a neuron takes its input with time folded into the batch dimension,
``[steps * batch, ...]`` (time-major), or a constant input ``[batch, ...]`` that is repeated
at every step (the analog input current of the first layer). A converted network can so
run each synaptic layer once for a whole chunk of time steps; only the neuron's own
recurrence loops over time.
"""
from __future__ import annotations

import operator

import torch
from torch import nn

from .kernels import _integrate_and_fire, _SignedBPTT, _steps_like, _use_count, spike

__all__ = ["spike", "SpikingNeuron", "IFNeuron", "SignedIFNeuron", "IBTNeuron"]


def _count_arg(value, what: str, least: int) -> int:
    """``value`` as an int of at least ``least`` (NumPy integers too), else a ValueError naming ``what``."""
    try:
        n = operator.index(value)
    except TypeError:
        n = None
    if n is None or n < least:
        raise ValueError(f"{what} must be an integer >= {least}, got {value!r}")
    return n


def _threshold(value: float | torch.Tensor, name: str) -> nn.Parameter:
    t = torch.as_tensor(value, dtype=torch.float32).detach().clone()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite, got {value}")
    # A Parameter (frozen by default) so that calibration can choose to train it.
    return nn.Parameter(t, requires_grad=False)


class SpikingNeuron(nn.Module):
    """Base class: membrane state, time folding and spike counting.

    Subclasses define the thresholds as properties: ``p_th`` and ``pos_value`` (the
    magnitude a positive spike carries), and for signed neurons ``n_th`` and ``neg_value``.

    The time axis is explicit: :meth:`run` takes a constant input and a number of steps, or
    a time-major input ``[steps, batch, ...]``, and returns ``[steps, batch, ...]``. Inside a
    network, where a neuron is called as a module on time folded into the batch,
    :meth:`set_time` tells it the axis (the :class:`~negspike.convert.SNN` does this for every
    neuron). The membrane persists across calls until :meth:`reset`, so a long simulation can
    run in chunks of time steps.
    """

    def __init__(self, v_init: float = 0.0, kappa: float = 6.7) -> None:
        super().__init__()
        if not 0.0 <= v_init < 1.0:
            raise ValueError(f"v_init is a fraction of P_th in [0, 1), got {v_init}")
        self.v_init = float(v_init)
        self.kappa = float(kappa)
        self.steps = 1
        self.batch: int | None = None
        self.count_spikes = True
        # Optional per-neuron initial membrane offset, added to v_init * P_th (calibration).
        self.v0: nn.Parameter | None = None
        # Output memory of the last fast (no-grad) chunk and its number of users when free,
        # reused by the next chunk once no one holds it any more; see :meth:`release_buffers`.
        self._out_buf: tuple[torch.Tensor, int | None] | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the membrane and the spike counts (call before each new input batch)."""
        self.v: torch.Tensor | None = None
        self.pos_spikes = 0
        self.neg_spikes = 0
        self.neuron_steps = 0  # neurons x samples x steps seen since reset

    # thresholds (overridden)
    p_th: torch.Tensor
    n_th: torch.Tensor | None = None
    pos_value: torch.Tensor
    neg_value: torch.Tensor | None = None

    def initial_membrane(self, like: torch.Tensor) -> torch.Tensor:
        """``v(0) = v_init * P_th (+ v0 when set)``, broadcast to the shape of ``like``."""
        v = torch.zeros_like(like)
        if self.v_init:
            v = v + self.v_init * self.p_th
        if self.v0 is not None:
            v = v + self.v0
        return v

    def set_time(self, steps: int, batch: int | None = None) -> None:
        """The time axis of the next calls: inputs hold ``steps`` time steps of ``batch`` samples,
        folded time-major into the first dimension (or are one constant ``[batch, ...]``)."""
        steps, batch = _count_arg(steps, "number of time steps", 1), None if batch is None else _count_arg(batch, "batch", 0)
        self.steps, self.batch = steps, batch

    def time_major(self, out: torch.Tensor) -> torch.Tensor:
        """An output of the last call, ``[steps * batch, ...]``, viewed as ``[steps, batch, ...]``."""
        return out.view(self.steps, -1, *out.shape[1:])

    def run(self, currents: torch.Tensor, steps: int | None = None, fresh: bool = True) -> torch.Tensor:
        """The outputs ``[steps, batch, ...]`` (spike magnitudes) for ``currents``.

        With ``steps`` given, ``currents`` is ``[batch, ...]``, the same input at every step;
        without, it is time-major ``[steps, batch, ...]``. ``fresh=True`` starts from a reset
        membrane; ``fresh=False`` continues from the present one (a simulation in chunks).
        """
        if steps is None:
            if currents.dim() < 2:
                raise ValueError("a time-major input needs shape [steps, batch, ...]; for a constant "
                                 f"input give steps (got shape {tuple(currents.shape)})")
            steps, batch = currents.shape[:2]
            currents = currents.reshape(steps * batch, *currents.shape[2:])
        else:
            batch = currents.shape[0]
        if fresh:
            self.reset()
        self.set_time(steps, batch)
        return self(currents).view(steps, batch, *currents.shape[1:])

    def _currents(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = self.steps, self.batch
        if steps < 1:
            raise ValueError(f"number of time steps must be >= 1, got {steps}")
        if batch is None:
            batch = x.shape[0] // steps
        if x.shape[0] == batch * steps:
            return x.view(steps, batch, *x.shape[1:])
        if x.shape[0] == batch:
            return x.unsqueeze(0).expand(steps, *x.shape)
        raise ValueError(
            f"{type(self).__name__}: input batch {x.shape[0]} is neither batch={batch} "
            f"nor steps*batch={steps * batch}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cur = self._currents(x)
        steps = cur.shape[0]
        if self.v is None:
            self.v = self.initial_membrane(cur[0])
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        scalar = self.p_th.dim() == 0 and (self.n_th is None or self.n_th.dim() == 0)
        if needs_grad or not scalar:
            out = self._run_differentiable(cur)
            if self.count_spikes:
                with torch.no_grad():
                    self._count(out)
        else:
            out = self._run_fast(cur)  # counts the spikes itself
        return out.reshape(steps * cur.shape[1], *cur.shape[2:])

    def _run_differentiable(self, cur: torch.Tensor) -> torch.Tensor:
        # The written-out BPTT treats the thresholds as constants: any threshold that needs a
        # gradient (theta_n reaches only n_th and neg_value) takes the autograd path.
        thresholds = (self.p_th, self.n_th, self.pos_value, self.neg_value)
        fixed = not any(t is not None and t.requires_grad for t in thresholds)
        if fixed and self.p_th.dim() == 0 and (self.n_th is None or self.n_th.dim() == 0):
            out, self.v = _SignedBPTT.apply(cur, self.v, *self._scalar_thresholds(), self.kappa)
            return out
        return self._run_autograd(cur)

    def _run_autograd(self, cur: torch.Tensor) -> torch.Tensor:
        """Step-by-step autograd through the dynamics (thresholds may be trained)."""
        v = self.v
        outs = []
        for t in range(cur.shape[0]):
            v = v + cur[t]
            pos = spike(v - self.p_th, self.kappa)
            out = pos * self.pos_value
            reset = pos * self.p_th
            if self.n_th is not None:
                neg = spike(self.n_th - v, self.kappa)
                out = out + neg * self.neg_value
                reset = reset + neg * self.n_th
            v = v - reset
            outs.append(out)
        self.v = v
        return torch.stack(outs)

    def _scalar_thresholds(self):
        """``(p_th, n_th, pos_value, neg_value)`` as Python floats (``None`` without negative spikes)."""
        signed = self.n_th is not None
        return (self.p_th.item(), self.n_th.item() if signed else None,
                self.pos_value.item(), self.neg_value.item() if signed else None)

    def _run_fast(self, cur: torch.Tensor) -> torch.Tensor:
        """Same dynamics as :meth:`_run_differentiable`, without autograd; counts the spikes
        (when ``count_spikes``) block by block inside the loop.

        The output is written into the previous chunk's output memory when no other tensor
        uses it any more: fresh large allocations cost page faults (glibc maps every block
        above its mmap threshold anew).
        """
        # The membrane is always copied: a caller may hold ``self.v`` itself, which no
        # storage count can see.
        out, self.v, counts = _integrate_and_fire(cur, self.v, *self._scalar_thresholds(), count=self.count_spikes,
                                                  out=self._output_memory(self.v, cur.shape[0]))
        if counts is not None:
            self._add_counts(*counts, out.numel())
        return out

    def _output_memory(self, v: torch.Tensor, steps: int) -> torch.Tensor:
        """``[steps, *v.shape]`` laid out like ``v``: the kept buffer when it fits and nothing
        else holds it (its memory has as many users as right after it was made)."""
        if self._out_buf is not None:
            buf, users = self._out_buf
            if (users is not None and buf.shape[0] >= steps and buf.shape[1:] == v.shape and buf.dtype == v.dtype
                    and buf.device == v.device and buf[0].stride() == v.stride() and _use_count(buf) == users):
                return buf[:steps]
        self._out_buf = None  # let the old buffer go before allocating
        buf = _steps_like(v, steps)
        self._out_buf = (buf, _use_count(buf))
        return buf

    def release_buffers(self) -> None:
        """Drop the kept output memory (``negspike.simulate`` does so when it ends)."""
        self._out_buf = None

    def _add_counts(self, pos: int, neg: int, numel: int) -> None:
        self.pos_spikes += pos
        self.neg_spikes += neg
        self.neuron_steps += numel

    def _count(self, out: torch.Tensor) -> None:
        """Add this chunk's positive and negative spikes to the counters."""
        total = int(torch.count_nonzero(out))
        if self.n_th is None:
            pos = total
        elif self.pos_value.dim() == 0 and self.neg_value.dim() == 0:
            # sum(out) = P*pv + N*nv and P + N = total: two fast read-only reductions
            # instead of two boolean passes over the chunk.
            pv, nv = self.pos_value.item(), self.neg_value.item()
            pos = round((out.sum(dtype=torch.float64).item() - nv * total) / (pv - nv))
        else:
            pos = int(torch.count_nonzero(out > 0))
        self._add_counts(pos, total - pos, out.numel())


class IFNeuron(SpikingNeuron):
    """Integrate-and-fire neuron with soft reset (eqs. 1-3): decodes ``clip(ReLU(z), 0, theta)``."""

    def __init__(self, theta: float | torch.Tensor, v_init: float = 0.0, kappa: float = 6.7) -> None:
        super().__init__(v_init=v_init, kappa=kappa)
        self.theta = _threshold(theta, "theta")
        if (self.theta <= 0).any():
            raise ValueError(f"IF threshold must be > 0, got {theta}")

    @property
    def p_th(self) -> torch.Tensor:
        return self.theta

    @property
    def pos_value(self) -> torch.Tensor:
        return self.theta

    def extra_repr(self) -> str:
        return f"theta={self.theta.tolist()}, v_init={self.v_init}"


class SignedIFNeuron(SpikingNeuron):
    """Signed IF neuron with an adjustable negative threshold (the paper's neuron).

    Decodes ``clip(LeakyReLU_alpha(z), theta_n, theta_p)``. ``P_th = theta_p``,
    ``N_th = theta_n / alpha``; a negative spike carries ``theta_n`` downstream, i.e. it is
    weighted by ``|beta| = alpha |N_th| / P_th`` relative to a positive one.
    """

    def __init__(
        self,
        theta_p: float | torch.Tensor,
        theta_n: float | torch.Tensor,
        alpha: float,
        v_init: float = 0.0,
        kappa: float = 6.7,
    ) -> None:
        super().__init__(v_init=v_init, kappa=kappa)
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"Leaky-ReLU slope alpha must lie in (0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.theta_p = _threshold(theta_p, "theta_p")
        self.theta_n = _threshold(theta_n, "theta_n")
        if (self.theta_p <= 0).any():
            raise ValueError(f"theta_p must be > 0, got {theta_p}")
        if (self.theta_n >= 0).any():
            raise ValueError(f"theta_n must be < 0 (the negative clipping threshold), got {theta_n}")

    @property
    def p_th(self) -> torch.Tensor:
        return self.theta_p

    @property
    def n_th(self) -> torch.Tensor:
        return self.theta_n / self.alpha

    @property
    def pos_value(self) -> torch.Tensor:
        return self.theta_p

    @property
    def neg_value(self) -> torch.Tensor:
        return self.theta_n

    @property
    def beta(self) -> torch.Tensor:
        """|beta| = alpha |N_th| / P_th: weight of a negative spike relative to a positive one."""
        return self.alpha * self.n_th.abs() / self.p_th

    def extra_repr(self) -> str:
        return (
            f"theta_p={self.theta_p.tolist()}, theta_n={self.theta_n.tolist()}, "
            f"alpha={self.alpha}, v_init={self.v_init}"
        )


class IBTNeuron(SignedIFNeuron):
    """Signed neuron with imbalanced threshold (Kim et al. 2020): ``theta_n = -theta_p``.

    Then ``beta = 1`` and ``|N_th| = P_th / alpha``: a negative spike needs ``1/alpha``
    times more charge than a positive one, so negative values are resolved slowly.
    """

    def __init__(self, theta_p: float | torch.Tensor, alpha: float, v_init: float = 0.0, kappa: float = 6.7) -> None:
        theta_p = torch.as_tensor(theta_p, dtype=torch.float32)
        super().__init__(theta_p, -theta_p, alpha, v_init=v_init, kappa=kappa)
