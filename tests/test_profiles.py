from pathlib import Path

import pytest
import torch

from negspike import profiles
from negspike.profiles import ProfileError, available_profiles, load_profile

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_profiles_are_valid():
    assert {"smoke", "quick", "paper", "full"} <= set(available_profiles())
    for name in ("smoke", "quick", "paper", "full"):
        prof = load_profile(name)
        assert prof.name == name and prof.ann.alpha == 0.1
        assert all(t <= prof.evaluation.T_max for t in prof.evaluation.report_T)


def test_the_full_profile_is_the_papers_fashion_mnist_scale():
    full, paper, quick = (load_profile(n) for n in ("full", "paper", "quick"))
    assert full.ann == paper.ann and full.threshold == paper.threshold  # the paper's ANN schedule
    assert full.evaluation.test_subset is None and full.evaluation.T_max == 256 == full.evaluation.report_T[-1]
    # calibration over the whole surrogate schedule: kappa reaches 15 (from the 20th epoch on)
    from negspike.calibrate import kappa_at

    assert kappa_at(full.calibration.epochs - 1) == 15.0 and full.calibration.T == paper.calibration.T
    assert full.cifar is None and "report" in full.chapters and "calibration" in full.chapters
    assert quick.evaluation.seeds and not full.evaluation.seeds  # the seed spread is measured at quick's scale


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


def test_cifar_sections_of_the_shipped_profiles():
    cpu, smoke, paper, quick = (load_profile(n) for n in ("cifar-cpu", "smoke", "paper", "quick"))
    assert cpu.chapters == ("cifar10",) and cpu.cifar.dataset == "cifar10_jpeg" and cpu.cifar.width < 1
    assert smoke.cifar.dataset == "synthetic_cifar10" and smoke.chapters is None
    assert paper.cifar.dataset == "cifar10" and paper.cifar.width == 1.0 and paper.cifar.test_subset is None
    assert quick.cifar is None
    for prof in (cpu, smoke, paper):
        assert prof.cifar.models == ("vgg16", "resnet18") and 4 in prof.cifar.calibration_T
        # the paper's Tables 2 and 3 have T = 4 and 8; smoke keeps T = 4 only to stay fast
        assert prof.cifar.calibration_T == ((4,) if prof is smoke else (4, 8))
        ann = prof.cifar.ann_config("resnet18")
        assert (ann.model, ann.optimizer, ann.augment, ann.dataset) == ("resnet18", "sgd", True, prof.cifar.dataset)
        cal = prof.cifar.calibration_config("layerwise", 8)
        assert (cal.method, cal.neuron, cal.T) == ("layerwise", "signed", (8,))
        two = prof.cifar.calibration_config("two_stage", 4)
        assert (two.method, two.neuron, two.T) == ("layerwise", "ibt", (4,))
        assert {"two_stage", "joint"} <= set(prof.cifar.methods)


@pytest.mark.parametrize(
    "text, match",
    [
        ("cifar: {models: [alexnet]}\n", r"models=\['alexnet'\]: choose from 'vgg16', 'resnet18'"),
        ("cifar: {dataset: imagenet}\n", r"unknown CIFAR dataset 'imagenet'"),
        ("cifar: {calibration_T: [4, 32], T_max: 16}\n", r"T_max >= max\(calibration_T\)"),
        ("cifar: {alpha: 0}\n", r"alpha=0.0 must lie in \(0, 1\)"),
        ("cifar: {methods: [joint, spline]}\n", r"methods=\['joint', 'spline'\]: choose each of"),
        ("cifar: {test_subset: 0}\n", r"test_subset=0 must be >= 1"),
        ("cifar: {calibration_epochs: 0}\n", r"need calibration_epochs >= 1"),
        ("chapters: [cifar10, no_such_chapter]\n", r"must be a list of chapters of _toc.yml"),
        ("cifar: {own_neuron: signed}\n", r"own_neuron='signed': choose 'tracking' or 'pair'"),
        ("cifar: {calibration_holdout: -1}\n", r"calibration_holdout >= 0"),
        ("evaluation: {own_neuron: ibt}\n", r"own_neuron='ibt': choose 'tracking', 'pair' or null"),
        ("calibration: {holdout: -5}\n", r"need holdout >= 0"),
    ],
)
def test_bad_cifar_settings_and_chapters_are_named(tmp_path, monkeypatch, text, match):
    write(tmp_path, monkeypatch, text)
    with pytest.raises(ProfileError, match=match):
        load_profile("p")


def test_make_reproduce_runs_the_chapters_the_profile_lists():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def planned(profile):
        out = subprocess.run(["make", "-n", "-B", "reproduce", f"PROFILE={profile}"], cwd=root, capture_output=True,
                             text=True, check=True).stdout
        return [line.split()[2] for line in out.splitlines() if "scripts/run_chapter.py" in line]

    assert planned("cifar-cpu") == ["book/cifar10.ipynb"]
    quick = planned("quick")
    assert quick[-1] == "book/report.ipynb" and "book/cifar10.ipynb" in quick and "book/if_neuron.ipynb" in quick
    assert len(quick) == len(profiles.book_chapters())


def test_chapter_sizes_come_from_any_profile_file(tmp_path):
    """Every chapter reads its sizes from the profile, so a profile file of one's own runs them all."""
    import nbformat

    custom = tmp_path / "mine.yaml"
    custom.write_text("sizes: {neuron_T_values: [1, 4], neuron_inputs: 10, clipping_toy_steps: 5}\n")
    sz = load_profile(custom).sizes
    assert sz.neuron_T_values == (1, 4) and sz.neuron_inputs == 10 and sz.clipping_toy_steps == 5
    assert sz.per_channel == load_profile("quick").sizes.per_channel  # left out: the quick default
    bad = tmp_path / "bad.yaml"
    bad.write_text("sizes: {neuron_inputs: 0}\n")
    with pytest.raises(ProfileError, match="neuron_inputs"):
        load_profile(bad)
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")
        assert "unknown profile" not in code and "SIZES = {" not in code, f"{path.name} hard-codes per-profile sizes"


def test_the_own_neuron_runs_beside_the_papers_and_is_labelled_so(tmp_path, monkeypatch):
    from negspike.experiments import CIFAR_METHODS, OWN_METHODS, study_calibration, study_methods

    cpu = load_profile("cifar-cpu").cifar
    own = cpu.calibration_config("own", 8)
    assert (own.method, own.weighting, own.neuron, own.T) == ("joint", "cosine", "tracking", (8,))
    assert (own.holdout, own.checks) == (cpu.calibration_holdout, cpu.calibration_checks)
    assert cpu.calibration_config("joint", 8).neuron == "signed", "the proposed row stays the paper's neuron"
    assert all("not the paper's" in CIFAR_METHODS[m] for m in ("own", "own_none"))
    quick = load_profile("quick")
    assert study_methods(quick)[-2:] == tuple(OWN_METHODS)
    assert study_calibration(quick, "own_cosine").neuron == "tracking"
    assert study_calibration(quick, "cosine").neuron == "signed"
    write(tmp_path, monkeypatch, "evaluation: {own_neuron: null}\n")
    plain = load_profile("p")
    assert "own_none" not in study_methods(plain)
    with pytest.raises(ValueError, match="needs evaluation.own_neuron"):
        study_calibration(plain, "own_none")


def test_calibration_holdout_images_are_disjoint_and_leave_the_calibration_images_as_they_were():
    from negspike.pipeline import ANNConfig, CalibrationConfig, calibration_images

    cfg = ANNConfig(dataset="synthetic_fmnist")
    x0, none = calibration_images(cfg, CalibrationConfig(subset=64))
    x, (hx, hy) = calibration_images(cfg, CalibrationConfig(subset=64, holdout=32))
    assert none is None and torch.equal(x, x0) and len(hx) == len(hy) == 32
    flat = lambda t: {tuple(r.flatten()[:20].tolist()) for r in t}  # noqa: E731
    assert not flat(hx) & flat(x), "a held-out image is also a calibration image"
