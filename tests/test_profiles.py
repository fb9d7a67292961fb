import pytest

from negspike.profiles import PROFILE_KEYS, ProfileError, available_profiles, load_profile
from negspike import profiles


def test_shipped_profiles_are_valid():
    assert {"smoke", "quick", "paper"} <= set(available_profiles())
    for name in ("smoke", "quick", "paper"):
        cfg = load_profile(name)
        assert cfg["profile"] == name and set(PROFILE_KEYS) <= set(cfg)


def write(tmp_path, monkeypatch, text):
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    base = (profiles.Path(__file__).resolve().parents[1] / "profiles" / "smoke.yaml").read_text()
    (tmp_path / "p.yaml").write_text(base + text)


def test_unknown_profile_lists_choices():
    with pytest.raises(ProfileError, match=r"unknown profile 'quik'; choose one of \[.*'quick'"):
        load_profile("quik")


@pytest.mark.parametrize(
    "extra, match",
    [
        ("epoch: 3\n", r"unknown keys \['epoch'\]"),
        ("T_max: ten\n", r"T_max='ten' should be of type int"),
        ("T_max: 0\n", r"T_max=0 must be >= 1"),
        ("alpha: 1.5\n", r"alpha=1.5 must lie in \(0, 1\)"),
    ],
)
def test_bad_profile_values_are_named(tmp_path, monkeypatch, extra, match):
    write(tmp_path, monkeypatch, extra)
    with pytest.raises(ProfileError, match=match):
        load_profile("p")
