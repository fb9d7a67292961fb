"""Spiking neurons: the IF neuron, the signed IF neuron with negative spikes, and IBT.

The book's own neurons, which keep the Leaky ReLU for fluctuating inputs, are in
:mod:`negspike.tracking`; :func:`negspike.tracking.make_neuron` builds any neuron by kind.

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

import torch
from torch import nn

__all__ = ["spike", "SpikingNeuron", "IFNeuron", "SignedIFNeuron", "IBTNeuron"]


class _SigmoidSurrogateSpike(torch.autograd.Function):
    """Heaviside step forward; derivative of a sigmoid of slope ``kappa`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kappa: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.kappa = kappa
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.kappa * x)
        return grad_out * ctx.kappa * sg * (1 - sg), None


def spike(x: torch.Tensor, kappa: float = 6.7) -> torch.Tensor:
    """Heaviside step ``H(x) = [x >= 0]`` with a sigmoid surrogate gradient (eq. 32).

    The forward pass is the exact step; the backward pass returns
    ``kappa * g * (1 - g)`` with ``g = sigmoid(kappa * x)``.
    """
    if kappa <= 0:
        raise ValueError(f"kappa must be positive, got {kappa}")
    return _SigmoidSurrogateSpike.apply(x, kappa)


# Elements of one block of the neuron loop on the CPU. The loop runs every time step of a
# chunk on one block of samples before it moves to the next, so that the block's membrane,
# input, output and scratch (5 x 1 MiB) stay in cache instead of streaming each of the
# seven passes per step through main memory (Net4's first layer at batch 256 holds 19 MB).
# Blocks much smaller than this make many short multi-threaded operations, whose thread
# synchronisation costs more than the cache saves, badly so when the cores are shared.
CPU_BLOCK = 1 << 18

_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _use_count(t: torch.Tensor) -> int | None:
    """How many tensors (and storage objects) hold the memory of ``t``; None if unknown."""
    if _storage_use_count is None:
        return None
    try:  # a private API: without it nothing is reused
        return _storage_use_count(t.untyped_storage()._cdata)
    except Exception:
        return None


def _steps_like(v: torch.Tensor, steps: int) -> torch.Tensor:
    """Uninitialised ``[steps, *v.shape]`` whose every step has ``v``'s memory layout
    (channels-last stays channels-last), and which folds to ``[steps * batch, ...]`` as a view."""
    if v.dim() == 4 and not v.is_contiguous() and v.is_contiguous(memory_format=torch.channels_last):
        flat = torch.empty((steps * v.shape[0], *v.shape[1:]), dtype=v.dtype, device=v.device,
                           memory_format=torch.channels_last)
        return flat.view(steps, *v.shape)
    return v.new_empty((steps, *v.shape))


@torch.no_grad()
def _integrate_and_fire(cur, v, p_th, n_th, pv, nv, u_all=None, count=False, out=None):
    """The neuron's recurrence over ``cur`` ([steps, batch, ...]) from membrane ``v``.

    Thresholds are Python scalars; ``n_th is None`` means no negative spikes. The neuron
    is memory bound, so each step is a few in-place passes over preallocated buffers, and
    on the CPU the batch is cut into blocks of about :data:`CPU_BLOCK` elements that run
    all steps while they are in cache. Returns the outputs (spike magnitudes, laid out
    like ``v``; written into ``out`` when given), the final membrane and, with ``count``,
    the numbers of positive and negative spikes (else ``None``). ``u_all``, when given,
    receives the membrane after integration and before reset at every step (for BPTT).
    """
    v = v.clone()
    steps, batch = cur.shape[0], v.shape[0]
    if out is None:
        out = _steps_like(v, steps)
    per_sample = max(1, v[0].numel()) if batch else 1
    rows = max(1, min(batch, CPU_BLOCK // per_sample)) if v.device.type == "cpu" else max(1, batch)
    pos_buf = torch.empty_like(v[:rows])
    neg_buf = torch.empty_like(v[:rows]) if n_th is not None else None
    if count:  # spikes of each block and step, summed from the 0/1 masks while in cache
        dims = tuple(range(v.dim()))
        n_sums = -(-batch // rows) * steps
        # A float32 sum of 0/1 values is exact below 2**24 elements and avoids a float64
        # copy of the block per sum; only larger blocks (on a GPU) need float64.
        exact = v.dtype if v[:rows].numel() < 2**24 else torch.float64
        sums = torch.zeros(2, n_sums, dtype=exact, device=v.device)
    k = 0
    for b0 in range(0, batch, rows):
        b1 = min(batch, b0 + rows)
        vb, cb, ob = v[b0:b1], cur[:, b0:b1], out[:, b0:b1]
        pos = pos_buf[: b1 - b0]
        neg = neg_buf[: b1 - b0] if neg_buf is not None else None
        for t in range(steps):
            vb.add_(cb[t])
            if u_all is not None:
                u_all[t, b0:b1].copy_(vb)
            torch.ge(vb, p_th, out=pos)
            torch.mul(pos, pv, out=ob[t])
            vb.sub_(pos, alpha=p_th)
            if count:
                torch.sum(pos, dims, dtype=exact, out=sums[0, k])
            if neg is not None:
                torch.le(vb, n_th, out=neg)  # v >= 0 here after a positive spike
                ob[t].add_(neg, alpha=nv)
                vb.sub_(neg, alpha=n_th)
                if count:
                    torch.sum(neg, dims, dtype=exact, out=sums[1, k])
            k += 1
    counts = None
    if count:
        counts = tuple(int(c) for c in sums.sum(1, dtype=torch.float64).tolist())
    return out, v, counts


class _SignedBPTT(torch.autograd.Function):
    """The whole recurrence of an (optionally signed) IF neuron over ``T`` steps, with BPTT.

    Same dynamics and surrogate gradients as the step-by-step autograd loop, but the
    forward pass runs in place and the backward pass is written out, which saves most of
    the memory traffic of a generic autograd graph. Thresholds are fixed scalars here.
    """

    @staticmethod
    def forward(ctx, cur, v, p_th, n_th, pv, nv, kappa):
        u_all = _steps_like(v, cur.shape[0])
        out, v, _ = _integrate_and_fire(cur, v.detach(), p_th, n_th, pv, nv, u_all)
        ctx.save_for_backward(u_all)
        ctx.consts = (p_th, n_th, pv, nv, kappa)
        return out, v

    @staticmethod
    def backward(ctx, grad_out, grad_v):
        (u_all,) = ctx.saved_tensors
        p_th, n_th, pv, nv, kappa = ctx.consts
        gv = torch.zeros_like(u_all[0]) if grad_v is None else grad_v.clone()
        grad_out = torch.zeros_like(u_all) if grad_out is None else grad_out
        grad_cur = torch.empty_like(u_all)
        for t in range(u_all.shape[0] - 1, -1, -1):
            u = u_all[t]
            sp = torch.sigmoid(kappa * (u - p_th))
            gp = kappa * sp * (1 - sp)  # d pos / d u
            # d out / d u = pv gp (- nv gn);  d v_t / d u = 1 - P_th gp (+ N_th gn)
            du = grad_out[t] * pv * gp + gv * (1 - p_th * gp)
            if n_th is not None:
                sn = torch.sigmoid(kappa * (n_th - u))
                gn = kappa * sn * (1 - sn)  # -(d neg / d u)
                du = du - grad_out[t] * nv * gn + gv * (n_th * gn)
            grad_cur[t] = du
            gv = du
        return grad_cur, gv, None, None, None, None, None


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

    Before a forward pass the simulator sets ``steps`` (time steps in this chunk) and
    ``batch``. The membrane persists across calls until :meth:`reset`, so a long
    simulation can run in chunks of time steps.
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
