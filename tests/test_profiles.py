import pytest

from negspike import profiles
from negspike.profiles import ProfileError, available_profiles, load_profile


def test_shipped_profiles_are_valid():
    assert {"smoke", "quick", "paper"} <= set(available_profiles())
    for name in ("smoke", "quick", "paper"):
        prof = load_profile(name)
        assert prof.name == name and prof.ann.alpha == 0.1
        assert all(t <= prof.evaluation.T_max for t in prof.evaluation.report_T)


def write(tmp_path, monkeypatch, text):
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    (tmp_path / "p.yaml").write_text(text)


def test_unknown_profile_lists_choices():
    with pytest.raises(ProfileError, match=r"unknown profile 'quik'; choose one of \[.*'quick'"):
        load_profile("quik")


@pytest.mark.parametrize(
    "text, match",
    [
        ("ann: {epoch: 3}\n", r"unknown keys \['epoch'\] in 'ann'; valid keys are \[.*'epochs'"),
        ("training: {}\n", r"unknown sections \['training'\]"),
        ("evaluation: {T_max: ten}\n", r"evaluation.T_max='ten' should be of type int"),
        ("evaluation: {T_max: 0}\n", r"T_max=0 must be >= 1"),
        ("ann: {alpha: 1.5}\n", r"alpha=1.5 must lie in \(0, 1\)"),
        ("ann: {dataset: mnist}\n", r"unknown dataset 'mnist'; choose one of \('fashion_mnist'"),
        ("calibration: {T: [0]}\n", r"T=\(0,\) must hold positive integers"),
        ("calibration: {weighting: linear}\n", r"unknown weighting 'linear'"),
        ("ann: {epochs: true}\n", r"ann.epochs=True should be of type int"),
    ],
)
def test_bad_profile_values_are_named(tmp_path, monkeypatch, text, match):
    write(tmp_path, monkeypatch, text)
    with pytest.raises(ProfileError, match=match):
        load_profile("p")


def test_defaults_fill_missing_keys_and_lists_become_tuples(tmp_path, monkeypatch):
    write(tmp_path, monkeypatch, "calibration: {T: [4, 8]}\nann: {lr: 1}\n")
    prof = load_profile("p")
    assert prof.calibration.T == (4, 8) and prof.ann.lr == 1.0 and prof.ann.epochs == 10
