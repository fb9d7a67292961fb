"""Run profiles (``profiles/<name>.yaml``): every setting of a reproduction in one file.

A profile has these sections, each mapping onto a configuration dataclass whose fields
are the valid keys: ``ann`` (:class:`~negspike.pipeline.ANNConfig`), ``threshold``
(:class:`~negspike.pipeline.ThresholdConfig`), ``calibration``
(:class:`~negspike.pipeline.CalibrationConfig`) and ``evaluation`` (:class:`EvalConfig`).
Keys left out take the dataclass defaults; unknown keys and wrongly typed values are
errors that name the key and the valid choices.

The section ``own`` (:class:`~negspike.own_network.OwnNetworkConfig`) sizes the chapter
"Convert your own network", and ``sizes`` (:class:`ChapterSizes`) the demonstrations of the
neuron, long-tail, variance-penalty and clipping chapters, so that any profile file runs
every chapter. Two optional top-level entries: ``cifar`` (:class:`CifarConfig`), the settings of the
CIFAR-10 chapter, which has nothing to run without it; and ``chapters``, the chapters
``make reproduce`` runs under the profile (default: all of ``_toc.yml``).
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .own_network import OwnNetworkConfig
from .pipeline import ANNConfig, CalibrationConfig, ThresholdConfig

__all__ = ["PROFILE_DIR", "ProfileError", "EvalConfig", "CifarConfig", "ChapterSizes", "Profile", "available_profiles", "load_profile",
           "current_profile", "book_chapters"]

PROFILE_DIR = Path(__file__).resolve().parents[2] / "profiles"
TOC = Path(__file__).resolve().parents[2] / "_toc.yml"


class ProfileError(ValueError):
    """A profile name, key or value is not valid."""


@dataclass(frozen=True)
class EvalConfig:
    """How converted networks are evaluated."""

    test_subset: int | None = None  # test images simulated (None: all)
    T_max: int = 32  # longest simulation
    report_T: tuple[int, ...] = (4, 8, 10, 16, 32)
    # The book's own neuron (negspike.tracking, not the paper's), converted and calibrated
    # beside the paper's in the calibration study and Table 1; null leaves it out.
    own_neuron: str | None = "tracking"
    # Further ANN seeds for the seed-to-seed spread of the headline rows (negspike.experiments.seed_study):
    # each trains, optimises thresholds and calibrates afresh, evaluated on the same test images.
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.own_neuron is not None and self.own_neuron not in ("tracking", "pair"):
            raise ValueError(f"own_neuron={self.own_neuron!r}: choose 'tracking', 'pair' or null")
        if len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds={list(self.seeds)} must be distinct non-negative integers")


@dataclass(frozen=True)
class CifarConfig:
    """The CIFAR-10 chapter: each model is trained, threshold-optimised, converted, then
    calibrated by each of ``methods`` at each ``T`` of ``calibration_T`` separately."""

    dataset: str = "cifar10"  # or "cifar10_jpeg" (the lossy copy), "synthetic_cifar10" (tests)
    models: tuple[str, ...] = ("vgg16", "resnet18")
    width: float = 1.0  # channel-width factor of both models
    alpha: float = 0.1
    # ANN training: SGD with Nesterov momentum, cosine schedule, random crop and flip
    epochs: int = 200
    lr: float = 0.05
    batch_size: int = 128
    weight_decay: float = 5e-4
    train_subset: int | None = None
    seed: int = 0
    # threshold optimisation (BN form of the variance penalty, then trainable clipping)
    vp_epochs: int = 5
    clip_epochs: int = 5
    # temporal calibration, one run per method and T: "two_stage" (IBT neurons, layer by
    # layer: the paper's baseline), "joint" (proposed), "layerwise" (signed neurons, layer by
    # layer), "own" (the book's own neuron `own_neuron`, joint calibration; not the paper's)
    methods: tuple[str, ...] = ("two_stage", "joint")
    own_neuron: str = "tracking"
    calibration_T: tuple[int, ...] = (4, 8)
    calibration_epochs: int = 5
    calibration_subset: int | None = 10000
    calibration_batch_size: int = 128
    calibration_lr: float = 1e-4
    # held-out training images scored before and `calibration_checks` times per epoch of each
    # calibration; it ends in the best state (0: no checks)
    calibration_holdout: int = 0
    calibration_checks: int = 1
    # evaluation; the layer diagnosis (negspike.depth) runs on the first depth_images test images
    test_subset: int | None = None
    T_max: int = 16
    depth_images: int = 128

    def __post_init__(self) -> None:
        if self.dataset not in ("cifar10", "cifar10_jpeg", "synthetic_cifar10"):
            raise ValueError(f"unknown CIFAR dataset {self.dataset!r}; choose 'cifar10', 'cifar10_jpeg' "
                             "or 'synthetic_cifar10'")
        bad = [m for m in self.models if m not in ("vgg16", "resnet18")]
        if bad or not self.models:
            raise ValueError(f"models={list(self.models)}: choose from 'vgg16', 'resnet18'")
        if not 0 < self.width <= 4:
            raise ValueError(f"width={self.width} must lie in (0, 4]")
        bad = [m for m in self.methods if m not in ("two_stage", "joint", "layerwise", "own")]
        if bad or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods={list(self.methods)}: choose each of 'two_stage', 'joint', 'layerwise', "
                             "'own' at most once")
        if self.own_neuron not in ("tracking", "pair"):
            raise ValueError(f"own_neuron={self.own_neuron!r}: choose 'tracking' or 'pair'")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models={list(self.models)} lists a model twice")
        if self.calibration_epochs < 1 or self.calibration_lr <= 0 or self.calibration_batch_size < 1:
            raise ValueError(f"need calibration_epochs >= 1, calibration_lr > 0 and calibration_batch_size >= 1; "
                             f"got {self.calibration_epochs}, {self.calibration_lr}, {self.calibration_batch_size}")
        if self.depth_images < 0 or self.calibration_holdout < 0 or self.calibration_checks < 1:
            raise ValueError(f"need depth_images >= 0, calibration_holdout >= 0 and calibration_checks >= 1; got "
                             f"{self.depth_images}, {self.calibration_holdout}, {self.calibration_checks}")
        for key in ("train_subset", "calibration_subset", "test_subset"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 1 (or null for all images)")
        if not self.calibration_T or any(t < 1 for t in self.calibration_T) or self.T_max < max(self.calibration_T):
            raise ValueError(f"need calibration_T >= 1 and T_max >= max(calibration_T); got "
                             f"{list(self.calibration_T)} and {self.T_max}")
        self.ann_config("vgg16")  # validates alpha, epochs, learning rate, ...
        self.threshold_config()

    def ann_config(self, model: str) -> ANNConfig:
        return ANNConfig(dataset=self.dataset, model=model, alpha=self.alpha, width=self.width, epochs=self.epochs,
                         lr=self.lr, batch_size=self.batch_size, weight_decay=self.weight_decay, optimizer="sgd",
                         train_subset=self.train_subset, seed=self.seed, augment=True)

    def threshold_config(self) -> ThresholdConfig:
        return ThresholdConfig(vp_epochs=self.vp_epochs, clip_epochs=self.clip_epochs)

    def calibration_config(self, method: str, T: int) -> CalibrationConfig:
        """At ``T``: ``"joint"`` (cosine weighting) or ``"layerwise"`` calibration of the signed
        neurons, ``"two_stage"``: IBT neurons calibrated layer by layer (the paper's baseline),
        or ``"own"``: the book's own neuron calibrated jointly."""
        neuron = {"two_stage": "ibt", "own": self.own_neuron}.get(method, "signed")
        method = {"two_stage": "layerwise", "own": "joint"}.get(method, method)
        return CalibrationConfig(method=method, weighting="cosine", T=(T,), epochs=self.calibration_epochs,
                                 lr=self.calibration_lr, batch_size=self.calibration_batch_size,
                                 subset=self.calibration_subset, neuron=neuron, holdout=self.calibration_holdout,
                                 checks=self.calibration_checks)


@dataclass(frozen=True)
class ChapterSizes:
    """Sizes of the chapters' own demonstrations (the neuron, long-tail, clipping and deep-network chapters),
    which do not go through the cached pipeline; the defaults are the ``quick`` sizes."""

    neuron_T_values: tuple[int, ...] = tuple(2**k for k in range(11))  # T tested on single neurons
    neuron_inputs: int = 1_000  # random constant inputs per T
    rate_curve_T: int = 64  # T of the IF neuron's rate-versus-input curve
    staircase_grid: int = 1_201  # input grid of the signed neuron's staircase plot
    stats_images: int = 10_000  # training images whose activations are measured
    per_channel: int = 200_000  # activation values kept per channel for histograms
    long_tail_toy: int = 50_000  # values of the long-tail chapter's toy layer
    clipping_toy: int = 20_000  # values of the clipping chapter's toy layer
    clipping_toy_steps: int = 1_500  # gradient steps on that toy layer
    fluctuation_T: int = 2_048  # deep-networks chapter: steps of the fluctuating-input experiment
    fluctuation_inputs: int = 1_000  # inputs per mean and amplitude there
    diagnosis_images: int = 256  # test images of its layer-by-layer diagnosis

    def __post_init__(self) -> None:
        if not self.neuron_T_values or any(t < 1 for t in self.neuron_T_values):
            raise ValueError(f"neuron_T_values={self.neuron_T_values} must be positive step counts")
        small = [f.name for f in dataclasses.fields(self) if f.name != "neuron_T_values" and getattr(self, f.name) < 1]
        if small:
            raise ValueError(f"{small} must be >= 1")


@dataclass(frozen=True)
class Profile:
    name: str
    ann: ANNConfig = field(default_factory=ANNConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    cifar: CifarConfig | None = None
    own: OwnNetworkConfig = field(default_factory=OwnNetworkConfig)
    sizes: ChapterSizes = field(default_factory=ChapterSizes)
    chapters: tuple[str, ...] | None = None  # None: every chapter


SECTIONS = {"ann": ANNConfig, "threshold": ThresholdConfig, "calibration": CalibrationConfig, "evaluation": EvalConfig,
            "cifar": CifarConfig, "own": OwnNetworkConfig, "sizes": ChapterSizes}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _coerce(profile: str, where: str, value, hint):
    """Check ``value`` against a field type hint; lists become tuples, ints may be floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            try:
                return _coerce(profile, where, value, arm)
            except ProfileError:
                continue
        raise ProfileError(f"profile {profile!r}: {where}={value!r} should be of type {hint}")
    if hint is type(None):
        if value is None:
            return None
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            (arm, *_rest) = typing.get_args(hint)
            return tuple(_coerce(profile, where, v, arm) for v in value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ProfileError(f"profile {profile!r}: {where}={value!r} should be of type {name}")


def _section(profile: str, section: str, cls, values: dict):
    if not isinstance(values, dict):
        raise ProfileError(f"profile {profile!r}: section {section!r} must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ProfileError(f"profile {profile!r}: unknown keys {unknown} in {section!r}; valid keys are {valid}")
    kwargs = {k: _coerce(profile, f"{section}.{k}", v, hints[k]) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ProfileError(f"profile {profile!r}, section {section!r}: {err}") from err


def load_profile(name: str | Path) -> Profile:
    """Read and validate ``profiles/<name>.yaml``, or a profile file given by its path
    (a name ending in ``.yaml``; the profile is then named after the file)."""
    if str(name).endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise ProfileError(f"profile file {str(path)!r} does not exist")
        name = path.stem
    else:
        choices = available_profiles()
        if name not in choices:
            raise ProfileError(f"unknown profile {name!r}; choose one of {choices} or give a path to a .yaml file")
        path = PROFILE_DIR / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(raw) - set(SECTIONS) - {"chapters"})
    if unknown:
        raise ProfileError(f"profile {name!r}: unknown sections {unknown}; valid sections are "
                           f"{[*SECTIONS, 'chapters']}")
    parts = {s: _section(name, s, cls, raw.get(s) or {}) for s, cls in SECTIONS.items() if s != "cifar"}
    if raw.get("cifar") is not None:
        parts["cifar"] = _section(name, "cifar", CifarConfig, raw["cifar"])
    ev = parts["evaluation"]
    if ev.T_max < 1:
        raise ProfileError(f"profile {name!r}: evaluation.T_max={ev.T_max} must be >= 1")
    chapters = raw.get("chapters")
    if chapters is not None:
        known = book_chapters()
        if not isinstance(chapters, list) or any(c not in known for c in chapters):
            raise ProfileError(f"profile {name!r}: chapters={chapters!r} must be a list of chapters of _toc.yml: "
                               f"{known}")
        chapters = tuple(chapters)
    return Profile(name=name, chapters=chapters, **parts)


def book_chapters() -> list[str]:
    """The chapters listed in ``_toc.yml``, in order."""
    toc = yaml.safe_load(TOC.read_text())
    return [Path(c["file"]).name for c in toc.get("chapters", [])]


def current_profile(default: str = "quick") -> str:
    """The profile named by ``NEGSPIKE_PROFILE``, else ``default`` (how nbval runs the smoke profile)."""
    return os.environ.get("NEGSPIKE_PROFILE", default)


def main(argv: list[str] | None = None) -> int:
    """``python -m negspike.profiles [--chapters] NAME``: validate a profile and check that the
    JPEG copy of CIFAR-10 exists if it needs it (one error line if not); with
    ``--chapters``, print the chapters it runs, one per line."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    chapters = "--chapters" in args
    args = [a for a in args if a != "--chapters"]
    if len(args) != 1:
        print("usage: python -m negspike.profiles [--chapters] NAME|PATH.yaml", file=sys.stderr)
        return 2
    try:
        prof = load_profile(args[0])
    except ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if chapters:
        print("\n".join(prof.chapters or book_chapters()))
        return 0
    if prof.cifar is not None and prof.cifar.dataset == "cifar10" and not os.environ.get("NEGSPIKE_CIFAR10_NPZ"):
        from .data import DATA_DIR

        if not (DATA_DIR / "cifar-10-batches-py").is_dir():
            print(f"note: profile {prof.name!r} trains on CIFAR-10, which torchvision will download into {DATA_DIR} "
                  "when its chapter runs; without internet set NEGSPIKE_CIFAR10_NPZ to a copy, or use "
                  "PROFILE=cifar-cpu (the JPEG copy)", file=sys.stderr)
    if prof.cifar is not None and prof.cifar.dataset == "cifar10_jpeg":
        from .data import cifar10_jpeg_candidates

        if not any(p.is_file() for p in cifar10_jpeg_candidates()):
            tried = ", ".join(str(p) for p in cifar10_jpeg_candidates())
            print(f"error: profile {prof.name!r} needs the JPEG copy of CIFAR-10 (cifar10-jpeg.npz), found nowhere "
                  f"(tried {tried}); copy it to data/cifar10-jpeg.npz or set NEGSPIKE_CIFAR10_JPEG "
                  "(see data/README.md)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
