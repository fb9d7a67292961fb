"""Diagnosis of the signed neuron under fluctuating input and with depth; the initial membrane."""
import numpy as np
import pytest
import torch

from negspike import SignedIFNeuron, convert
from negspike.depth import fluctuating_inputs, fluctuation_table, layer_diagnosis
from negspike.rounding import balanced_start, side_errors
from negspike.tracking import TrackingNeuron

from test_calibrate import small_pair


def test_fluctuating_inputs_have_exactly_the_requested_mean():
    z = torch.tensor([-0.5, 0.0, 0.7])
    x = fluctuating_inputs(z, 3.0, 256)
    assert x.shape == (256, 3)
    assert torch.allclose(x.double().mean(0), z.double(), atol=1e-5)
    assert x.std(0).min() > 2.5


def test_the_signed_neuron_misdecodes_a_fluctuating_input_and_the_tracking_neuron_does_not():
    df = fluctuation_table({"signed": lambda: SignedIFNeuron(1.0, -0.1, 0.1, v_init=0.5),
                            "tracking": lambda: TrackingNeuron(1.0, -0.1, 0.1, v_init=0.5)},
                           [-0.5, 0.5], [0.0, 3.0], T=512, n=200)
    err = df.set_index(["neuron", "z", "amplitude"])["abs_error"]
    assert err[("signed", -0.5, 0.0)] < 1e-3 and err[("tracking", -0.5, 0.0)] < 1e-3
    # the counter-example: mean input -0.5 decodes to a *positive* value on the paper's neuron
    assert df[(df.neuron == "signed") & (df.z == -0.5) & (df.amplitude == 3.0)]["decoded"].item() > 0
    assert err[("signed", -0.5, 3.0)] > 0.1 and err[("signed", 0.5, 3.0)] > 0.1
    assert err[("tracking", -0.5, 3.0)] < 0.01 and err[("tracking", 0.5, 3.0)] < 0.02


def test_layer_diagnosis_per_layer_and_T():
    ann, x = small_pair()
    df = layer_diagnosis(convert(ann, neuron="signed", v_init=0.5), ann, x, [4, 64])
    assert list(df[df["T"] == 4]["layer"]) == ["1", "5", "readout"]
    assert list(df[df["T"] == 4]["depth"]) == [1, 2, 3]
    first = df[df["layer"] == "1"]
    assert (first["wrong_sign_share"] == 0).all(), "a constant input never gives a spike of the wrong sign"
    assert (df[df["layer"] == "5"]["wrong_sign_share"] > 0).all(), "spiking input does"
    err = df.pivot(index="T", columns="layer", values="rel_error")
    assert (err.loc[64] < err.loc[4] / 4).all(), "the error shrinks with T"
    assert df[df["layer"] == "readout"]["wrong_sign_share"].isna().all()


def test_one_membrane_cannot_round_both_sides_and_the_balanced_start_minimises_their_sum():
    grid = np.round(np.arange(0.0, 0.96, 0.05), 2)
    df = side_errors(["signed", "tracking"], grid, theta_p=2.0, theta_n=-0.1, alpha=0.1, T=8, n=1000)
    e = df.set_index(["neuron", "v_init", "side"])["mean_abs_error"]
    # half a threshold rounds the positive side and makes the negative side worse than a zero start
    assert e[("signed", 0.5, "positive")] < 0.55 * e[("signed", 0.0, "positive")]
    assert e[("signed", 0.5, "negative")] > 2.5 * e[("signed", 0.0, "negative")]
    both = df[(df.neuron == "signed") & (df.side == "both")].set_index("v_init")["mean_abs_error"]
    assert abs(both.idxmin() - balanced_start(0.1)) <= 0.05 + 1e-9
    # the tracking neuron rounds both sides at 0.5: about a quarter of a spike's value over T
    assert e[("tracking", 0.5, "negative")] == pytest.approx(0.1 / 4 / 8, rel=0.1)
    assert e[("tracking", 0.5, "positive")] == pytest.approx(2.0 / 4 / 8, rel=0.1)
    assert not (df.neuron.eq("tracking") & df.v_init.gt(0.5)).any()
    with pytest.raises(ValueError, match="alpha"):
        balanced_start(1.5)
