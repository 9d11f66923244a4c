"""Chapter profiles: ``quick`` (tests, CI), ``default`` (the published CPU build), ``paper``."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace
from typing import Any

PROFILE_NAMES = ("quick", "default", "paper")

__all__ = [
    "PROFILE_NAMES",
    "resolve_profile",
]


def resolve_profile(
    profile: str, table: dict[str, dict[str, Any]], *, verbose: bool = True, **overrides: Any
) -> SimpleNamespace:
    """Settings of one profile, with overrides applied, printed for the record.

    Args:
        profile: ``"quick"``, ``"default"`` or ``"paper"``.
        table: ``{profile: {setting: value}}``; every profile must define the same settings.
        verbose: print the resolved settings (the first output of every chapter).
        **overrides: settings to replace; ``None`` means "keep the profile's value".

    Returns:
        A namespace with one attribute per setting, plus ``profile``.

    Raises:
        ValueError: unknown profile, or an override that is not a setting of the table.
    """
    if profile not in table:
        raise ValueError(f"profile must be one of {sorted(table)}, got {profile!r}")
    settings = dict(table[profile])
    for key, value in overrides.items():
        if key not in settings:
            raise ValueError(f"unknown setting {key!r}; valid settings: {sorted(settings)}")
        if value is not None:
            settings[key] = value
    ns = SimpleNamespace(profile=profile, **settings)
    if verbose:
        print(f"profile = {profile!r}")
        for key, value in settings.items():  # long values wrap inside the page's code box
            indent = " " * (len(key) + 5)
            print(textwrap.fill(f"  {key} = {value!r}", width=74, subsequent_indent=indent))
    return ns
