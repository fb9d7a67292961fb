"""The neurons' time loops: the surrogate spike, and the fast recurrences of the signed IF
neuron (:mod:`negspike.neurons`) and of the book's tracking neurons (:mod:`negspike.tracking`)
over a chunk of time steps, cache blocked on the CPU, with their BPTT written out.

The neuron classes hold the state and the thresholds and call these; the functions here
take plain tensors and Python floats, so they can be tested and timed alone.
"""
from __future__ import annotations

import torch

__all__ = ["spike", "CPU_BLOCK"]


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


@torch.no_grad()
def _track_and_fire(cur, s, c, t0, tp, tn, lo, h_p, h_n, alpha, count=False, out=None, saved=None):
    """Fast recurrence of :class:`TrackingNeuron` over ``cur`` ([steps, batch, ...]).

    ``s``, ``c``: integrated input and output sent (copied, not changed); ``t0``: steps
    already run since reset. Thresholds are Python floats: ``tp``, ``tn`` (spike values,
    ``tn is None`` without negative spikes), ``lo = theta_n / alpha`` (the clip of S below),
    ``h_p``, ``h_n > 0`` (firing points). Same cache blocking as :func:`_integrate_and_fire`.
    ``saved``, when given, is a pair of ``[steps, batch, ...]`` tensors that receive S and the
    owed output u at every step (for BPTT). Returns ``(out, s, c, counts)``.
    """
    s, c = s.clone(), c.clone()
    steps, batch = cur.shape[0], s.shape[0]
    if out is None:
        out = _steps_like(s, steps)
    per_sample = max(1, s[0].numel()) if batch else 1
    rows = max(1, min(batch, CPU_BLOCK // per_sample)) if s.device.type == "cpu" else max(1, batch)
    u_buf, pos_buf = torch.empty_like(s[:rows]), torch.empty_like(s[:rows])
    neg_buf = torch.empty_like(s[:rows]) if tn is not None else None
    if count:
        dims = tuple(range(s.dim()))
        exact = s.dtype if s[:rows].numel() < 2**24 else torch.float64
        sums = torch.zeros(2, -(-batch // rows) * steps, dtype=exact, device=s.device)
    k = 0
    for b0 in range(0, batch, rows):
        b1 = min(batch, b0 + rows)
        sb, cb, qb, ob = s[b0:b1], c[b0:b1], cur[:, b0:b1], out[:, b0:b1]
        u, pos = u_buf[: b1 - b0], pos_buf[: b1 - b0]
        neg = neg_buf[: b1 - b0] if neg_buf is not None else None
        for t in range(steps):
            n = t0 + t + 1
            sb.add_(qb[t])
            if tn is None:
                torch.clamp(sb, 0.0, n * tp, out=u)
            else:  # clip S first: LeakyReLU(clip(S, n lo, n tp)) = clip(LeakyReLU(S), n tn, n tp)
                torch.clamp(sb, n * lo, n * tp, out=u)
                torch.nn.functional.leaky_relu(u, alpha, inplace=True)
            u.sub_(cb)  # the output owed
            if saved is not None:
                saved[0][t, b0:b1].copy_(sb)
                saved[1][t, b0:b1].copy_(u)
            torch.ge(u, h_p, out=pos)
            torch.mul(pos, tp, out=ob[t])
            if count:
                torch.sum(pos, dims, dtype=exact, out=sums[0, k])
            if neg is not None:
                torch.le(u, -h_n, out=neg)
                ob[t].add_(neg, alpha=tn)
                if count:
                    torch.sum(neg, dims, dtype=exact, out=sums[1, k])
            cb.add_(ob[t])
            k += 1
    counts = tuple(int(x) for x in sums.sum(1, dtype=torch.float64).tolist()) if count else None
    return out, s, c, counts


@torch.no_grad()
def _pair_track_and_fire(cur, s, cp, cn, t0, tp, tn, lo, h_p, h_n, count=False, out=None):
    """Fast recurrence of :class:`PairTrackingNeuron` (see :func:`_track_and_fire`).

    ``cp``: output sent by the positive unit; ``cn``: output sent by the negative unit in
    input units (``C_n / alpha``); ``h_n`` is the negative unit's firing point in those
    units. Counts are exact: a step may carry a spike of each unit.
    """
    s, cp = s.clone(), cp.clone()
    cn = cn.clone() if cn is not None else None
    steps, batch = cur.shape[0], s.shape[0]
    if out is None:
        out = _steps_like(s, steps)
    per_sample = max(1, s[0].numel()) if batch else 1
    rows = max(1, min(batch, CPU_BLOCK // per_sample)) if s.device.type == "cpu" else max(1, batch)
    u_buf, up_buf, dn_buf = (torch.empty_like(s[:rows]) for _ in range(3))
    if count:
        dims = tuple(range(s.dim()))
        exact = s.dtype if s[:rows].numel() < 2**24 else torch.float64
        sums = torch.zeros(2, 2, -(-batch // rows) * steps, dtype=exact, device=s.device)
    k = 0
    for b0 in range(0, batch, rows):
        b1 = min(batch, b0 + rows)
        sb, pb, qb, ob = s[b0:b1], cp[b0:b1], cur[:, b0:b1], out[:, b0:b1]
        nb = cn[b0:b1] if cn is not None else None
        u, up, dn = u_buf[: b1 - b0], up_buf[: b1 - b0], dn_buf[: b1 - b0]
        for t in range(steps):
            n = t0 + t + 1
            sb.add_(qb[t])
            # positive unit: target clip(S, 0, n tp), spikes +-tp
            torch.clamp(sb, 0.0, n * tp, out=u)
            u.sub_(pb)
            torch.ge(u, h_p, out=up)
            torch.le(u, -h_p, out=dn)
            if count:  # positive-valued spikes in row 0, negative-valued in row 1
                torch.sum(up, dims, dtype=exact, out=sums[0, 0, k])
                torch.sum(dn, dims, dtype=exact, out=sums[1, 0, k])
            up.sub_(dn)
            torch.mul(up, tp, out=ob[t])
            pb.add_(ob[t])
            if nb is not None:
                # negative unit, in input units: target clip(S, n lo, 0), spikes of -+|lo|
                torch.clamp(sb, n * lo, 0.0, out=u)
                u.sub_(nb)
                torch.le(u, -h_n, out=up)  # owes more negative output: a spike of value tn
                torch.ge(u, h_n, out=dn)  # sent too much: a retraction of value -tn > 0
                if count:
                    torch.sum(dn, dims, dtype=exact, out=sums[0, 1, k])
                    torch.sum(up, dims, dtype=exact, out=sums[1, 1, k])
                up.sub_(dn)
                nb.add_(up, alpha=lo)
                ob[t].add_(up, alpha=tn)
            k += 1
    counts = tuple(int(x) for x in sums.sum((1, 2), dtype=torch.float64).tolist()) if count else None
    return out, s, cp, cn, counts


class _TrackingBPTT(torch.autograd.Function):
    """:class:`TrackingNeuron` over a chunk with its BPTT written out (fixed scalar thresholds).

    Same spikes and surrogate gradients as the step-by-step autograd loop, at the memory
    of two saved tensors per step (S and the owed output) instead of a generic graph.
    Inputs ``cur, s, c``; outputs ``out, s, c`` and the spike counts (not differentiable).
    """

    @staticmethod
    def forward(ctx, cur, s, c, t0, tp, tn, lo, h_p, h_n, alpha, kappa, count):
        saved = (_steps_like(s, cur.shape[0]), _steps_like(s, cur.shape[0]))
        out, s_new, c_new, counts = _track_and_fire(cur, s.detach(), c.detach(), t0, tp, tn, lo, h_p, h_n, alpha,
                                                    count=count, saved=saved)
        ctx.save_for_backward(*saved)
        ctx.consts = (t0, tp, tn, lo, h_p, h_n, alpha, kappa)
        counts = torch.tensor(counts if counts is not None else (0, 0), dtype=torch.float64)
        ctx.mark_non_differentiable(counts)
        return out, s_new, c_new, counts

    @staticmethod
    def backward(ctx, grad_out, grad_s, grad_c, _grad_counts):
        s_all, u_all = ctx.saved_tensors
        t0, tp, tn, lo, h_p, h_n, alpha, kappa = ctx.consts
        gs = torch.zeros_like(s_all[0]) if grad_s is None else grad_s.clone()
        gc = torch.zeros_like(s_all[0]) if grad_c is None else grad_c.clone()
        grad_out = torch.zeros_like(u_all) if grad_out is None else grad_out
        grad_cur = torch.empty_like(u_all)
        for t in range(u_all.shape[0] - 1, -1, -1):
            n, u, st = t0 + t + 1, u_all[t], s_all[t]
            sp = torch.sigmoid(kappa * (u - h_p))
            dout_du = tp * kappa * sp * (1 - sp)  # out = tp H(u - h_p) + tn H(-h_n - u)
            if tn is not None:
                sn = torch.sigmoid(kappa * (-h_n - u))
                dout_du = dout_du - tn * kappa * sn * (1 - sn)
            g_u = (grad_out[t] + gc) * dout_du  # c_t = c_{t-1} + out_t passes gc to out_t
            gc = gc - g_u  # u_t = X(S_t) - c_{t-1}
            # dX/dS: 1 (or alpha for S <= 0) inside the clip [n lo, n tp], 0 outside
            low = n * lo if tn is not None else 0.0
            dx = ((st >= low) & (st <= n * tp)).to(st.dtype)
            if tn is not None:
                dx = dx * torch.where(st > 0, 1.0, alpha)
            gs = gs + g_u * dx
            grad_cur[t] = gs
        return (grad_cur, gs, gc) + (None,) * 9
