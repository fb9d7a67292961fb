import pytest
import torch

from negspike.neurons import IBTNeuron, IFNeuron, SignedIFNeuron, spike


def decoded(neuron, z, T):
    return neuron.run(z, T).mean(0)


def clipped_leaky(z, alpha, tn, tp):
    return torch.clamp(torch.where(z > 0, z, alpha * z), tn, tp)


@pytest.mark.parametrize("T", [1, 3, 8, 10, 32, 100, 256])
@pytest.mark.parametrize("tp,tn,alpha", [(1.0, -0.3, 0.1), (2.5, -0.05, 0.2), (0.7, -0.7, 0.5)])
def test_signed_rate_is_clipped_leaky_relu_within_one_over_T(T, tp, tn, alpha):
    z = torch.linspace(-3 * abs(tn) / alpha, 1.5 * tp, 2001)  # both signs, inside and beyond the clip
    err = (decoded(SignedIFNeuron(tp, tn, alpha), z, T) - clipped_leaky(z, alpha, tn, tp)).abs()
    assert err.max() <= max(tp, abs(tn)) / T + 1e-5
    assert (z < 0).any() and (z > 0).any()


def test_signed_neuron_fires_negative_spikes_carrying_theta_n():
    n = SignedIFNeuron(1.0, -0.2, 0.1)
    out = decoded(n, torch.tensor([-1.0]), 10)  # z = -1: clipped LeakyReLU = -0.1
    assert out.item() == pytest.approx(-0.1, abs=0.2 / 10)
    assert n.neg_spikes > 0 and n.pos_spikes == 0
    assert n.n_th.item() == pytest.approx(-2.0)  # N_th = theta_n / alpha
    assert n.beta.item() == pytest.approx(0.2)  # |beta| = alpha |N_th| / P_th = |theta_n| / theta_p


def test_ibt_is_signed_with_symmetric_clip():
    z = torch.linspace(-20, 3, 501)
    ibt = IBTNeuron(1.0, 0.1)
    same = SignedIFNeuron(1.0, -1.0, 0.1)
    for T in (4, 16, 64):
        assert torch.equal(decoded(ibt, z, T), decoded(same, z, T))
    assert ibt.n_th.item() == pytest.approx(-10.0)  # |N_th| = P_th / alpha
    assert ibt.beta.item() == pytest.approx(1.0)


def test_ibt_resolves_negative_values_slower_than_adjustable_threshold():
    z = torch.linspace(-2, 0, 201)
    target = 0.1 * z
    T = 16
    ibt_err = (decoded(IBTNeuron(1.0, 0.1), z, T) - target).abs().mean()
    signed_err = (decoded(SignedIFNeuron(1.0, -0.2, 0.1), z, T) - target).abs().mean()
    assert signed_err < ibt_err / 3


@pytest.mark.parametrize("T", [1, 5, 64])
def test_if_neuron_gives_clipped_relu(T):
    z = torch.linspace(-2, 3, 501)
    out = decoded(IFNeuron(2.0), z, T)
    assert (out >= 0).all()
    assert (out - z.clamp(0, 2.0)).abs().max() <= 2.0 / T + 1e-6


def test_half_threshold_initial_membrane_rounds_instead_of_floors():
    z = torch.rand(5000)
    T = 8
    err0 = (decoded(IFNeuron(1.0), z, T) - z).abs().mean()
    err_half = (decoded(IFNeuron(1.0, v_init=0.5), z, T) - z).abs().mean()
    assert err_half < 0.6 * err0


def test_fast_path_equals_differentiable_path():
    torch.manual_seed(1)
    cur = torch.randn(12 * 7, 5) * 2
    a = SignedIFNeuron(1.3, -0.4, 0.1, v_init=0.5)
    b = SignedIFNeuron(1.3, -0.4, 0.1, v_init=0.5)
    b.theta_p.requires_grad_(True)  # forces the autograd path
    for n in (a, b):
        n.set_time(12, 7)
    fast = a(cur)
    slow = b(cur)
    assert torch.allclose(fast, slow.detach(), atol=1e-6)
    assert (a.pos_spikes, a.neg_spikes) == (b.pos_spikes, b.neg_spikes)


def test_theta_n_alone_trainable_gets_its_gradient():
    """theta_n reaches the dynamics only through N_th and the negative spike's value; a
    neuron whose only trainable threshold is theta_n must not take the fixed-threshold
    BPTT (which would leave theta_n without a gradient)."""
    torch.manual_seed(2)
    cur = torch.randn(10 * 6, 4) * 1.5 - 0.5
    weights = torch.randn(10 * 6, 4)  # a loss that depends on every output

    def grads(train_p: bool):
        n = SignedIFNeuron(1.1, -0.3, 0.1)
        n.set_time(10, 6)
        n.theta_n.requires_grad_(True)
        n.theta_p.requires_grad_(train_p)
        c = cur.clone().requires_grad_(True)
        (n(c) * weights).sum().backward()
        return n.theta_n.grad, c.grad

    only_n, cur_only_n = grads(False)
    both, cur_both = grads(True)
    assert only_n is not None and only_n.abs().item() > 1e-3, "theta_n got no gradient"
    assert torch.allclose(only_n, both), "theta_n's gradient must not depend on whether theta_p trains"
    assert torch.allclose(cur_only_n, cur_both, atol=1e-6)


def test_membrane_carries_over_chunks():
    z = torch.randn(50)
    whole = SignedIFNeuron(1.0, -0.3, 0.1)
    whole.set_time(12, 50)
    full = whole(z).view(12, 50)
    parts = SignedIFNeuron(1.0, -0.3, 0.1)
    outs = []
    for steps in (5, 4, 3):
        parts.set_time(steps, 50)
        outs.append(parts(z).view(steps, 50))
    assert torch.equal(full, torch.cat(outs))


def test_spike_surrogate_forward_exact_and_gradient_is_sigmoid_derivative():
    x = torch.linspace(-2, 2, 41, requires_grad=True)
    kappa = 6.7
    s = spike(x, kappa)
    assert torch.equal(s, (x >= 0).float())
    s.sum().backward()
    sg = torch.sigmoid(kappa * x.detach())
    assert torch.allclose(x.grad, kappa * sg * (1 - sg))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SignedIFNeuron(1.0, 0.0, 0.1), "theta_n must be < 0"),
        (lambda: SignedIFNeuron(1.0, 0.5, 0.1), "theta_n must be < 0"),
        (lambda: SignedIFNeuron(-1.0, -0.5, 0.1), "theta_p must be > 0"),
        (lambda: SignedIFNeuron(1.0, -0.5, 1.5), "alpha must lie in"),
        (lambda: SignedIFNeuron(1.0, -0.5, 0.0), "alpha must lie in"),
        (lambda: IFNeuron(0.0), "threshold must be > 0"),
        (lambda: IFNeuron(1.0, v_init=1.5), "v_init"),
        (lambda: spike(torch.zeros(1), kappa=0), "kappa must be positive"),
    ],
)
def test_bad_neuron_parameters_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_positive_steps_raise():
    n = IFNeuron(1.0)
    for bad in (0, -3, 2.5, "4"):
        with pytest.raises(ValueError, match="time steps"):
            n.set_time(bad, 4)
        with pytest.raises(ValueError, match="time steps"):
            n.run(torch.zeros(4), bad)
    with pytest.raises(ValueError, match="batch"):
        n.set_time(3, -1)
    n.steps = 0  # set by hand, bypassing set_time: the forward pass still refuses
    with pytest.raises(ValueError, match="time steps"):
        n(torch.zeros(4))


def test_run_takes_a_constant_or_a_time_major_input_and_chunks_continue():
    torch.manual_seed(4)
    z = torch.randn(7, 3) * 1.5
    n = SignedIFNeuron(1.0, -0.3, 0.1, v_init=0.5)
    const = n.run(z, 11)
    assert const.shape == (11, 7, 3)
    seq = torch.randn(11, 7, 3)
    assert torch.equal(n.run(z.expand(11, 7, 3).clone()), const)
    whole = n.run(seq)
    first = n.run(seq[:4])
    rest = n.run(seq[4:], fresh=False)  # continues from the membrane left by the first chunk
    assert torch.equal(torch.cat([first, rest]), whole)
    assert not torch.equal(n.run(seq[4:]), rest)  # a fresh start differs from the continuation
    assert n.time_major(n(seq[4:].reshape(-1, 3))).shape == (7, 7, 3)
    with pytest.raises(ValueError, match="time-major"):
        n.run(torch.zeros(5))


@pytest.mark.parametrize("make", [lambda: SignedIFNeuron(1.0, -0.3, 0.1, kappa=3.0), lambda: IFNeuron(0.8, kappa=5.0)])
def test_written_out_bptt_equals_autograd_through_the_steps(make):
    torch.manual_seed(2)
    T, B = 9, 6
    cur = (torch.randn(T * B, 4) * 1.5).requires_grad_(True)
    weights = torch.randn(T, B, 4)
    grads, outs = [], []
    for path in ("_run_differentiable", "_run_autograd"):
        n = make()
        n.v0 = torch.nn.Parameter(torch.zeros(B, 4) + 0.1)
        n.set_time(T, B)
        n.v = n.initial_membrane(cur.view(T, B, 4)[0])
        out = getattr(n, path)(cur.view(T, B, 4))
        loss = (out * weights).sum() + (n.v ** 2).sum()
        grads.append(torch.autograd.grad(loss, [cur, n.v0]))
        outs.append(out.detach())
    assert torch.equal(outs[0], outs[1])
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-5)
    assert grads[0][0].abs().sum() > 0


def test_reused_output_memory_never_overwrites_a_held_output_or_membrane():
    """The fast path writes into the previous chunk's output and updates the membrane in
    place only when nothing else holds them; held tensors must keep their values."""
    torch.manual_seed(3)
    z = torch.randn(40, 6) * 2
    n = SignedIFNeuron(1.0, -0.3, 0.1, v_init=0.5)
    n.set_time(3, 40)
    first = n(z)
    kept, v_held = first.clone(), n.v
    v_kept = v_held.clone()
    second = n(z)
    assert torch.equal(first, kept), "a held output was overwritten by the next chunk"
    assert torch.equal(v_held, v_kept), "a held membrane was updated in place"
    assert second.data_ptr() != first.data_ptr()
    # Dropping the output lets the next chunk reuse its memory, with the same results.
    ref = SignedIFNeuron(1.0, -0.3, 0.1, v_init=0.5)
    ref.set_time(9, 40)
    expected = ref(z).view(9, 40, 6)
    n.reset()
    outs = [n(z).view(3, 40, 6).clone() for _ in range(3)]
    assert torch.equal(torch.cat(outs), expected)
    assert (n.pos_spikes, n.neg_spikes) == (ref.pos_spikes, ref.neg_spikes)
