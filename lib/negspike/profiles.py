"""Run profiles (``profiles/<name>.yaml``): one place for the settings of a reproduction."""
from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["PROFILE_DIR", "PROFILE_KEYS", "ProfileError", "available_profiles", "load_profile"]

PROFILE_DIR = Path(__file__).resolve().parents[2] / "profiles"

# key -> expected type; every profile must give every key.
PROFILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "dataset": str,
    "epochs": int,
    "lr": float,
    "batch_size": int,
    "alpha": float,
    "train_subset": (int, type(None)),
    "test_subset": (int, type(None)),
    "T_max": int,
    "report_T": list,
    "seed": int,
}


class ProfileError(ValueError):
    """A profile name, key or value is not valid."""


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name: str) -> dict:
    """Read and validate ``profiles/<name>.yaml``."""
    choices = available_profiles()
    if name not in choices:
        raise ProfileError(f"unknown profile {name!r}; choose one of {choices}")
    cfg = yaml.safe_load((PROFILE_DIR / f"{name}.yaml").read_text()) or {}
    unknown = sorted(set(cfg) - set(PROFILE_KEYS))
    if unknown:
        raise ProfileError(f"profile {name!r}: unknown keys {unknown}; valid keys are {sorted(PROFILE_KEYS)}")
    missing = sorted(set(PROFILE_KEYS) - set(cfg))
    if missing:
        raise ProfileError(f"profile {name!r}: missing keys {missing}")
    for key, typ in PROFILE_KEYS.items():
        value = cfg[key]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            cfg[key] = value = float(value)
        if isinstance(value, bool) or not isinstance(value, typ):
            raise ProfileError(f"profile {name!r}: {key}={value!r} should be of type {getattr(typ, '__name__', typ)}")
    if cfg["T_max"] < 1:
        raise ProfileError(f"profile {name!r}: T_max={cfg['T_max']} must be >= 1")
    if not 0 < cfg["alpha"] < 1:
        raise ProfileError(f"profile {name!r}: alpha={cfg['alpha']} must lie in (0, 1)")
    cfg["profile"] = name
    return cfg
