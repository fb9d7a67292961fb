"""The book's tracking neurons against the paper's signed neuron on fluctuating inputs (issue 13).

Inside a network every layer after the first receives spikes, so its input fluctuates.
Each adversarial test below shows the paper's neuron (:class:`SignedIFNeuron`) missing
``clip(LeakyReLU_alpha(mean input), theta_n, theta_p)`` by far more than the bound, and
the book's :class:`TrackingNeuron` / :class:`PairTrackingNeuron` meeting their bounds.

The bounds are computed per sequence (float64) from the targets the neurons track,
``X(t) = clip(LeakyReLU_alpha(S(t)), t theta_n, t theta_p)`` with ``S(t)`` the integrated
input. An account that pays rises of its target with spikes of ``up`` and falls with spikes
of ``down`` (at most one a step, fired at half a spike) owes ``u_t`` with
``u_t <= U_t = max(m/2, U_{t-1} + dX_t - up)`` and ``-u_t <= L_t = max(m/2, L_{t-1} - dX_t - down)``,
``m = max(up, down)``: two queues that drain by one spike a step (see :func:`_queue`); the
decoded error is ``|u_T| / T``. When one spike can pay every step's change, both stay at
``m / 2``: the class bounds of the docstrings.
"""
from __future__ import annotations

import pytest
import torch

from negspike.neurons import IBTNeuron, IFNeuron, SignedIFNeuron, SpikingNeuron
from negspike.tracking import NEURON_KINDS, PairTrackingNeuron, TrackingNeuron, make_neuron

TP, TN, ALPHA = 1.0, -0.1, 0.1  # the issue's thresholds: |N_th| = |theta_n| / alpha = 1
TOL = 1e-4  # float32 integration of S against the float64 reference


def run(neuron: SpikingNeuron, z: torch.Tensor, chunks: tuple[int, ...] | None = None) -> torch.Tensor:
    """Outputs ``[T, batch, ...]`` of ``neuron`` for currents ``z`` ([T, batch, ...]), from reset."""
    outs, t = [], 0
    for steps in chunks or (z.shape[0],):
        outs.append(neuron.run(z[t:t + steps], fresh=t == 0))
        t += steps
    return torch.cat(outs)


def decoded(neuron: SpikingNeuron, z: torch.Tensor) -> torch.Tensor:
    """Sum of the emitted spike values over T, divided by T (float64)."""
    return run(neuron, z).double().sum(0) / z.shape[0]


def leaky(x: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    return torch.where(x > 0, x, alpha * x)


def target(z: torch.Tensor, tp=TP, tn=TN, alpha=ALPHA) -> torch.Tensor:
    return leaky(z.double().mean(0), alpha).clamp(tn, tp)


def _steps(z):
    S = z.double().cumsum(0)
    t = torch.arange(1, z.shape[0] + 1, dtype=torch.float64).view(-1, *[1] * (z.dim() - 1))
    return S, t


def _queue(X: torch.Tensor, up: float, down: float) -> torch.Tensor:
    """Bound on the owed output at T of an account tracking ``X`` ([T, ...]) that pays an
    up-step with a spike of ``up`` and a down-step with one of ``down`` (one a step, fired
    at half a spike): ``u <= U_t = max(m/2, U + dX - up)``, ``-u <= L_t = max(m/2, L - dX - down)``
    with ``m = max(up, down)``; with ``U_0 = L_0 = 0``."""
    dX = torch.diff(X, dim=0, prepend=torch.zeros_like(X[:1]))
    m = max(up, down)
    U = L = torch.zeros_like(X[0])
    for d in dX:
        U = torch.clamp(U + d - up, min=m / 2)
        L = torch.clamp(L - d - down, min=m / 2)
    return torch.maximum(U, L)


def tracking_bound(z, tp=TP, tn=TN, alpha=ALPHA) -> torch.Tensor:
    """Per sequence: bound on |decoded - target| of :class:`TrackingNeuron` (v_init 0.5).

    One account: up-steps paid by theta_p, down-steps by |theta_n|.
    """
    S, t = _steps(z)
    return _queue(leaky(S, alpha).clamp(t * tn, t * tp), tp, abs(tn)) / z.shape[0] + TOL


def pair_bound(z, tp=TP, tn=TN, alpha=ALPHA) -> torch.Tensor:
    """Per sequence: bound on |decoded - target| of :class:`PairTrackingNeuron` (v_init 0.5)."""
    S, t = _steps(z)
    # Two accounts with symmetric spikes; either may hold a residual, so the bounds add.
    W = _queue(S.clamp(torch.zeros_like(t), t * tp), tp, tp)
    W = W + _queue(alpha * S.clamp(t * tn / alpha, torch.zeros_like(t)), abs(tn), abs(tn))
    return W / z.shape[0] + TOL


def paper(v_init=0.5):
    return SignedIFNeuron(TP, TN, ALPHA, v_init=v_init)


def tracking():
    return TrackingNeuron(TP, TN, ALPHA)


def pair():
    return PairTrackingNeuron(TP, TN, ALPHA)


def gaussian(mean: float, sd: float, T: int, batch: int, seed: int) -> torch.Tensor:
    """``batch`` sequences of T steps, Gaussian per step, whose mean over T is exactly ``mean``."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(T, batch, generator=g, dtype=torch.float64) * sd
    return (z - z.mean(0) + mean).float()


# ---------------------------------------------------------------------------
# Adversarial sequences: the paper's neuron misses, the tracking neurons meet the bound
# ---------------------------------------------------------------------------


def test_issue_gaussian_example_paper_decodes_the_wrong_sign():
    """Mean -0.5, per-step sd 3, T = 4096: target -0.05; the paper's neuron decodes about +0.125."""
    z = gaussian(-0.5, 3.0, 4096, 100, seed=0)
    tgt = target(z)
    assert torch.allclose(tgt, torch.full_like(tgt, -0.05))
    out_paper = decoded(paper(), z)
    assert out_paper.mean() > 0.1  # the issue's +0.125: the wrong sign
    for make, bound in ((tracking, tracking_bound), (pair, pair_bound)):
        err = (decoded(make(), z) - tgt).abs()
        b = bound(z)
        assert (err <= b).all(), make.__name__
        assert err.mean() < 0.002 and b.mean() < 0.01, make.__name__
        assert ((out_paper - tgt).abs() > 10 * b).all()  # the paper's neuron is far outside


def test_tracking_error_shrinks_with_T_and_the_paper_neurons_does_not():
    errs = {}
    for T in (256, 4096):
        z = gaussian(-0.5, 3.0, T, 100, seed=1)
        errs[T] = {name: (decoded(make(), z) - target(z)).abs().mean().item()
                   for name, make in (("paper", paper), ("tracking", tracking), ("pair", pair))}
    assert errs[4096]["paper"] > 0.15 and errs[256]["paper"] > 0.15  # a bias, at any T
    for name in ("tracking", "pair"):
        assert errs[4096][name] < errs[256][name] / 4  # about 1/T


@pytest.mark.parametrize("first", [1.0, -1.0])
def test_alternating_signs(first):
    """+a, -a, +a, ... (and -a first), a from 0.2 to 2: the mean is 0 or -a/T."""
    T = 256
    a = torch.linspace(0.2, 2.0, 91)
    z = torch.empty(T, len(a))
    z[0::2], z[1::2] = first * a, -first * a
    tgt = target(z)
    err_pair = (decoded(pair(), z) - tgt).abs()
    err_tracking = (decoded(tracking(), z) - tgt).abs()
    err_paper = (decoded(paper(), z) - tgt).abs()
    b_pair, b_tracking = pair_bound(z), tracking_bound(z)
    inside = a <= min(TP, abs(TN) / ALPHA)  # |z_t| <= min(theta_p, |N_th|): the pair's class
    assert (b_pair[inside] <= (TP + abs(TN)) / (2 * T) + TOL).all()
    assert (err_pair <= b_pair).all() and (err_tracking <= b_tracking).all()
    assert b_pair.max() < 0.01 and b_tracking.max() < 0.02  # bounded lag: the target never runs away
    # Once a swing reaches both of its thresholds (a >= 1.5 from v_init = 0.5) the paper's
    # neuron fires a positive and a negative spike per cycle and decodes about +0.45.
    big = a >= 1.5
    assert (err_paper[big] > 0.4).all() and (err_paper[big] > 40 * torch.maximum(b_pair, b_tracking)[big]).all()


def test_sign_flip_late_in_the_run():
    """+0.4 for the first half, -1 after: mean -0.3, target -0.03.

    Inside the pair's class (|z| <= 1): the pair meets (theta_p + |theta_n|)/(2T). The
    one-account tracking neuron retracts positive output at only |theta_n| per step and
    lags (still within its own queue bound); the paper's neuron decodes about +0.15.
    """
    T = 512
    z = torch.cat([torch.full((T // 2, 4), 0.4), torch.full((T // 2, 4), -1.0)])
    tgt = target(z)
    assert torch.allclose(tgt, torch.full_like(tgt, -0.03))
    bound = (TP + abs(TN)) / (2 * T)
    err_pair = (decoded(pair(), z) - tgt).abs()
    err_tracking = (decoded(tracking(), z) - tgt).abs()
    err_paper = (decoded(paper(), z) - tgt).abs()
    assert (err_pair <= bound + TOL).all()
    assert (err_tracking <= tracking_bound(z)).all() and (err_tracking > 0.1).all()
    assert (err_paper > 0.15).all() and (err_paper > 100 * bound).all()


def test_random_permutations_of_one_sequence_decode_the_same_value():
    """Every order of one sequence has the same mean, hence the same target."""
    T, n = 256, 200
    g = torch.Generator().manual_seed(2)
    base = torch.rand(T, generator=g) * 4 - 2.3  # values in [-2.3, 1.7), mean about -0.3
    z = torch.stack([base[torch.randperm(T, generator=g)] for _ in range(n)], 1)
    tgt = target(z)
    assert (tgt == tgt[0]).all()
    err_pair = (decoded(pair(), z) - tgt).abs()
    err_tracking = (decoded(tracking(), z) - tgt).abs()
    out_paper = decoded(paper(), z)
    b_pair, b_tracking = pair_bound(z), tracking_bound(z)
    assert (err_pair <= b_pair).all() and (err_tracking <= b_tracking).all()
    assert b_pair.max() < 0.02 and b_tracking.max() < 0.03
    # The paper's neuron depends on the order: a spread and an error far above the bounds.
    assert out_paper.max() - out_paper.min() > 0.05
    assert ((out_paper - tgt).abs() > 3 * torch.maximum(b_pair, b_tracking)).all()


def test_relu_pair_retracts_where_the_if_neuron_cannot():
    """ReLU (alpha = 0): +a then -a leaves mean 0; the IF neuron keeps the +a it sent."""
    T = 64
    a = torch.linspace(0.5, 1.0, 11)
    z = torch.cat([a.expand(T // 2, -1), -a.expand(T // 2, -1)])
    out_if = decoded(IFNeuron(1.0, v_init=0.5), z)
    out_pair = decoded(make_neuron("pair", 1.0, None, 0.0, 0.5), z)
    assert (out_if > 0.2).all()
    assert (out_pair.abs() <= 0.5 / T + TOL).all()


# ---------------------------------------------------------------------------
# Constant inputs: rounding on both sides (issue 13, point 3)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 3, 8, 32, 100])
@pytest.mark.parametrize("tp,tn,alpha", [(1.0, -0.1, 0.1), (2.0, -0.1, 0.1), (0.7, -0.7, 0.5)])
@pytest.mark.parametrize("cls", [TrackingNeuron, PairTrackingNeuron])
def test_constant_input_rounds_both_sides(cls, T, tp, tn, alpha):
    z = torch.linspace(-3 * abs(tn) / alpha, 1.5 * tp, 3001)
    err = (decoded(cls(tp, tn, alpha), z.expand(T, -1)) - target(z[None], tp, tn, alpha)).abs()
    assert err[z > 0].max() <= tp / (2 * T) + 1e-5
    assert err[z < 0].max() <= abs(tn) / (2 * T) + 1e-5


def test_rounding_beats_the_paper_neurons_initial_membranes_on_both_sides():
    """theta_p = 2, theta_n = -0.1, T = 8: v_init = 0.5 helps the paper's neuron on the
    positive side and hurts it on the negative side; the tracking neurons round both."""
    tp, tn, alpha, T = 2.0, -0.1, 0.1, 8
    z = torch.linspace(-2.0, 2.0, 4001)
    z = z[z != 0]
    tgt = target(z[None], tp, tn, alpha)
    pos, neg = z > 0, z < 0

    def side_errors(neuron):
        err = (decoded(neuron, z.expand(T, -1)) - tgt).abs()
        return err[pos].mean().item(), err[neg].mean().item()

    p0, n0 = side_errors(SignedIFNeuron(tp, tn, alpha, v_init=0.0))
    p5, n5 = side_errors(SignedIFNeuron(tp, tn, alpha, v_init=0.5))
    assert p5 < p0 and n5 > 2 * n0  # the trade-off of the issue
    for cls in (TrackingNeuron, PairTrackingNeuron):
        p, n = side_errors(cls(tp, tn, alpha))
        assert p <= p5 + 1e-6 and n <= min(n0, n5) + 1e-6


def test_floor_rounding_fraction_zero():
    """v_init = 0 fires at a whole spike: the decoded value never exceeds the target in
    magnitude and misses it by less than one spike over T."""
    T = 8
    z = torch.linspace(-2.0, 1.5, 1001)
    tgt = target(z[None])
    for cls in (TrackingNeuron, PairTrackingNeuron):
        out = decoded(cls(TP, TN, ALPHA, v_init=0.0), z.expand(T, -1))
        assert (out.abs() <= tgt.abs() + 1e-6).all()
        err = (out - tgt).abs()
        assert err[z > 0].max() < TP / T + 1e-6 and err[z < 0].max() < abs(TN) / T + 1e-6
    with pytest.raises(ValueError, match="rounding fraction"):
        TrackingNeuron(TP, TN, ALPHA, v_init=0.7)


def test_v0_is_an_offset_of_the_integrated_input():
    """``v0 = delta`` is S(0): the same spikes as ``delta`` added to the first input, so it
    adds delta / T to the mean input (as for the paper's membrane) within the queue bound.
    A large ``v0`` is a large first input: a target the neuron may have to retract."""
    T = 16
    z = torch.linspace(-2.0, 1.0, 301).expand(T, -1).clone()
    for delta in (0.4, -3.0):
        shifted = z.clone()
        shifted[0] += delta
        for cls, bound in ((TrackingNeuron, tracking_bound), (PairTrackingNeuron, pair_bound)):
            n = cls(TP, TN, ALPHA)
            n.v0 = torch.nn.Parameter(torch.full((301,), delta), requires_grad=False)
            out = run(n, z)
            assert torch.equal(out, run(cls(TP, TN, ALPHA), shifted))
            err = (out.double().sum(0) / T - target(shifted)).abs()
            assert (err <= bound(shifted)).all()


# ---------------------------------------------------------------------------
# Interface: chunks, paths, counts, per-channel thresholds, gradients, factory
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [tracking, pair, lambda: PairTrackingNeuron(1.0), lambda: TrackingNeuron(0.8)])
def test_chunked_runs_equal_one_long_run_and_the_autograd_path(make):
    z = gaussian(-0.2, 1.5, 24, 30, seed=3).view(24, 5, 6)
    whole, parts, slow = make(), make(), make()
    full = run(whole, z)
    assert torch.equal(run(parts, z, chunks=(5, 1, 10, 8)), full)
    slow.theta_p.requires_grad_(True)  # forces the step-by-step autograd path
    assert torch.equal(run(slow, z, chunks=(10, 14)).detach(), full)
    counts = {(n.pos_spikes, n.neg_spikes, n.neuron_steps) for n in (whole, parts, slow)}
    assert len(counts) == 1
    pos, neg, steps = counts.pop()
    assert steps == z.numel() and pos + neg > 0


def test_spike_counts_count_retractions_by_their_sign():
    """The pair may emit two spikes in one step; counts come from the units, not the sum."""
    z = torch.cat([torch.full((6, 1), 1.0), torch.full((1, 1), -30.0), torch.full((6, 1), 0.0)])
    n = pair()
    out = run(n, z)[:, 0]
    # Step 7 drops S from 6 to -24: the positive unit retracts (-1) and the negative one
    # fires (-0.1) in the same step, and both go on doing so while they lag.
    assert out[:6].tolist() == [1.0] * 6
    assert out[6].item() == pytest.approx(-1.1)
    # Positive unit: 6 spikes up, then 6 retractions (steps 7-12); negative unit: one spike
    # a step from step 7 on (its target falls by |theta_n| a step): 7 spikes.
    assert (n.pos_spikes, n.neg_spikes) == (6, 6 + 7)
    assert n.pos_spikes + n.neg_spikes > int((out != 0).sum())  # a sum of values would miss some
    m = tracking()
    run(m, z)
    assert m.pos_spikes == 6 and m.neg_spikes > 0


def test_per_channel_thresholds():
    tp = torch.tensor([1.0, 2.0, 0.5]).view(3, 1)
    tn = torch.tensor([-0.1, -0.4, -0.05]).view(3, 1)
    T, z = 16, torch.linspace(-5.0, 2.5, 200).expand(3, -1)
    tgt = torch.maximum(torch.minimum(leaky(z.double()), tp.double()), tn.double())
    for cls in (TrackingNeuron, PairTrackingNeuron):
        n = cls(tp, tn, ALPHA)
        out = decoded(n, z.unsqueeze(0).expand(T, 1, 3, 200))[0]
        bound = torch.maximum(tp, tn.abs()).double() / (2 * T)
        assert ((out - tgt).abs() <= bound + 1e-5).all()
        scalar = cls(2.0, -0.4, ALPHA)  # the channel with these thresholds, alone
        alone = decoded(scalar, z[1].expand(T, 1, -1))[0]
        assert torch.allclose(out[1], alone)


@pytest.mark.parametrize("cls", [TrackingNeuron, PairTrackingNeuron])
def test_gradients_reach_the_input_and_trainable_thresholds(cls):
    torch.manual_seed(4)
    T, B = 12, 8
    cur = (torch.randn(T * B, 5) * 0.8 - 0.2).requires_grad_(True)
    n = cls(torch.full((5,), 1.0), torch.full((5,), -0.2), ALPHA)
    n.theta_p.requires_grad_(True)
    n.theta_n.requires_grad_(True)
    n.set_time(T, B)
    out = n(cur)
    loss = (out.view(T, B, 5).mean(0) - 0.3).pow(2).sum()
    loss.backward()
    for g in (cur.grad, n.theta_p.grad, n.theta_n.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    # Fixed thresholds: the gradient still flows to the input (joint calibration of weights).
    cur.grad = None
    m = cls(1.0, -0.2, ALPHA)
    m.set_time(T, B)
    m(cur).sum().backward()
    assert cur.grad.abs().sum() > 0


def test_held_outputs_are_not_overwritten_and_buffers_release():
    z = gaussian(0.0, 2.0, 6, 40, seed=5)
    for make in (tracking, pair):
        n = make()
        n.set_time(3, 40)
        first = n(z[:3].reshape(-1))
        kept = first.clone()
        n(z[3:].reshape(-1))
        assert torch.equal(first, kept)
        assert n._out_buf is not None
        n.release_buffers()
        assert n._out_buf is None


def test_make_neuron_keeps_the_reproduction_rules():
    assert NEURON_KINDS[:3] == ("signed", "ibt", "if") and {"tracking", "pair"} <= set(NEURON_KINDS)
    n = make_neuron("signed", 1.5, -0.2, 0.1, 0.5)
    assert type(n) is SignedIFNeuron and n.theta_n.item() == pytest.approx(-0.2) and n.v_init == 0.5
    assert type(make_neuron("ibt", 1.5, -0.2, 0.1, 0.0)) is IBTNeuron
    assert type(make_neuron("if", 1.5, -0.2, 0.1, 0.0)) is IFNeuron
    for kind in ("signed", "ibt", "if"):  # ReLU layers become IF neurons
        assert type(make_neuron(kind, 1.5, None, 0.0, 0.0)) is IFNeuron
    with pytest.raises(ValueError, match="negative threshold"):
        make_neuron("signed", 1.5, None, 0.1, 0.0)
    t = make_neuron("tracking", 1.5, -0.2, 0.1, 0.5)
    assert type(t) is TrackingNeuron and t.alpha == 0.1
    relu = make_neuron("pair", 1.5, None, 0.0, 0.5)
    assert type(relu) is PairTrackingNeuron and relu.theta_n is None and relu.n_th is None
    with pytest.raises(ValueError, match="negative threshold"):
        make_neuron("tracking", 1.5, None, 0.1, 0.5)
    with pytest.raises(ValueError, match=r"unknown neuron kind 'lif'.*signed.*tracking"):
        make_neuron("lif", 1.0, -0.1, 0.1, 0.0)


@pytest.mark.parametrize("theta_n,alpha", [(-0.3, 0.1), (None, 0.0)])
def test_written_out_bptt_equals_autograd_through_the_steps(theta_n, alpha):
    """Fixed scalar thresholds use a written-out BPTT; it must match the generic loop."""
    torch.manual_seed(6)
    T, B = 10, 6
    cur = (torch.randn(T * B, 4) * 1.2 - 0.1).requires_grad_(True)
    weights = torch.randn(T, B, 4)
    grads, outs, counts = [], [], []
    for path in ("_run_autograd", "_run_steps"):
        n = TrackingNeuron(0.9, theta_n, alpha, kappa=3.0)
        n.v0 = torch.nn.Parameter(torch.zeros(B, 4) + 0.2)
        n.set_time(T, B)
        n.v = n.initial_membrane(cur.view(T, B, 4)[0])
        n._init_outputs(n.v)
        out, cnt = getattr(n, path)(cur.view(T, B, 4))
        loss = (out * weights).sum() + (n.v ** 2).sum() + (n.c ** 2).sum()
        grads.append(torch.autograd.grad(loss, [cur, n.v0]))
        outs.append(out.detach())
        counts.append(cnt)
    assert torch.equal(outs[0], outs[1]) and counts[0] == counts[1]
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-5)
    assert grads[0][0].abs().sum() > 0
