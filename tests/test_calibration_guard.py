"""Calibration with held-out checks ends in the best state it saw (issue 13, point 4)."""
import pandas as pd
import pytest
import torch

from negspike import convert
from negspike.calibrate import calibrate_joint, calibrate_layerwise
from negspike.calibration_guard import KeepBest, holdout_accuracy

from test_calibrate import small_pair


def _holdout(ann, seed=5, n=96):
    """Images the calibration does not see, labelled by the ANN (which is then 100% right)."""
    x = torch.randn(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, ann(x).argmax(1)


def test_a_harmful_joint_calibration_is_undone_by_the_holdout_checks():
    ann, x = small_pair(4)
    hx, hy = _holdout(ann)
    reckless = dict(T=4, epochs=2, lr=0.5, batch_size=16, loss="mse", progress=False)
    plain = convert(ann)
    start = holdout_accuracy(plain, hx, hy, [4])
    calibrate_joint(plain, ann, x, **reckless)
    assert holdout_accuracy(plain, hx, hy, [4]) < start - 0.1, "the learning rate must really do harm here"

    guarded = convert(ann)
    hist = calibrate_joint(guarded, ann, x, holdout=(hx, hy), checks=2, **reckless)
    checks = pd.DataFrame(hist.attrs["holdout"])
    assert list(checks["after"]) == ["start", "step 2", "step 4", "step 6", "step 8"]
    assert checks["kept"].sum() == 1
    assert (checks["ann_holdout_acc"] == 1.0).all(), "the holdout is labelled by the ANN"
    final = holdout_accuracy(guarded, hx, hy, [4])
    assert final >= start
    assert final == pytest.approx(checks.loc[checks["kept"], "holdout_acc"].item())
    assert not any(p.requires_grad for p in guarded.parameters())


def test_a_useful_joint_calibration_is_kept():
    ann, x = small_pair(1)
    hx, hy = _holdout(ann, seed=6)
    snn = convert(ann)
    before = {n: p.clone() for n, p in snn.named_parameters()}
    hist = calibrate_joint(snn, ann, x, T=4, epochs=4, lr=3e-3, batch_size=32, loss="mse", progress=False,
                           holdout=(hx, hy))
    checks = pd.DataFrame(hist.attrs["holdout"])
    if checks["kept"].iloc[0]:
        pytest.fail(f"calibration should improve this pair: {checks.to_dict('records')}")
    assert any(not torch.equal(p, before[n]) for n, p in snn.named_parameters())


def test_layerwise_calibration_with_holdout_never_ends_worse_and_can_return_to_the_start():
    ann, x = small_pair(2)
    hx, hy = _holdout(ann, seed=7)
    snn = convert(ann)
    start = holdout_accuracy(snn, hx, hy, [4])
    hist = calibrate_layerwise(snn, ann, x, T=4, epochs=1, lr=0.5, batch_size=16, loss="mse", progress=False,
                               holdout=(hx, hy))
    checks = pd.DataFrame(hist.attrs["holdout"])
    assert list(checks["after"]) == ["start", "membranes", "all layers"]
    assert holdout_accuracy(snn, hx, hy, [4]) >= start
    if checks["kept"].iloc[0]:  # back at the start: no membrane offsets either
        assert all(m.v0.abs().max() == 0 for m in snn.neurons.values())


def test_keep_best_checks_its_holdout():
    ann, _ = small_pair()
    snn = convert(ann)
    with pytest.raises(ValueError, match="as many labels"):
        KeepBest(snn, list(snn.parameters()), (torch.zeros(3, 1, 12, 12), torch.zeros(2)), [4])
