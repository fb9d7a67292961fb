"""Run profiles (``profiles/<name>.yaml``): every setting of a reproduction in one file.

A profile has four sections, each mapping onto a configuration dataclass whose fields
are the valid keys: ``ann`` (:class:`~negspike.pipeline.ANNConfig`), ``threshold``
(:class:`~negspike.pipeline.ThresholdConfig`), ``calibration``
(:class:`~negspike.pipeline.CalibrationConfig`) and ``evaluation`` (:class:`EvalConfig`).
Keys left out take the dataclass defaults; unknown keys and wrongly typed values are
errors that name the key and the valid choices.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .pipeline import ANNConfig, CalibrationConfig, ThresholdConfig

__all__ = ["PROFILE_DIR", "ProfileError", "EvalConfig", "Profile", "available_profiles", "load_profile", "current_profile"]

PROFILE_DIR = Path(__file__).resolve().parents[2] / "profiles"


class ProfileError(ValueError):
    """A profile name, key or value is not valid."""


@dataclass(frozen=True)
class EvalConfig:
    """How converted networks are evaluated."""

    test_subset: int | None = None  # test images simulated (None: all)
    T_max: int = 32  # longest simulation
    report_T: tuple[int, ...] = (4, 8, 10, 16, 32)


@dataclass(frozen=True)
class Profile:
    name: str
    ann: ANNConfig = field(default_factory=ANNConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)


SECTIONS = {"ann": ANNConfig, "threshold": ThresholdConfig, "calibration": CalibrationConfig, "evaluation": EvalConfig}


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
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ProfileError(f"profile {name!r}: unknown sections {unknown}; valid sections are {list(SECTIONS)}")
    parts = {s: _section(name, s, cls, raw.get(s) or {}) for s, cls in SECTIONS.items()}
    ev = parts["evaluation"]
    if ev.T_max < 1:
        raise ProfileError(f"profile {name!r}: evaluation.T_max={ev.T_max} must be >= 1")
    return Profile(name=name, **parts)


def current_profile(default: str = "quick") -> str:
    """The profile named by ``NEGSPIKE_PROFILE``, else ``default`` (how nbval runs the smoke profile)."""
    return os.environ.get("NEGSPIKE_PROFILE", default)


def main(argv: list[str] | None = None) -> int:
    """``python -m negspike.profiles NAME``: validate a profile; one error line if it is not valid."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m negspike.profiles NAME|PATH.yaml", file=sys.stderr)
        return 2
    try:
        load_profile(args[0])
    except ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
