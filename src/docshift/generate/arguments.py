"""The checks every generator makes on its arguments before it writes anything."""

from __future__ import annotations

import math

from docshift.errors import UsageError


def check_scale(scale: float) -> None:
    """``scale`` must be a finite number above 0."""
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise UsageError(
            f"scale must be a finite number greater than 0, not {scale!r}",
            hint="scale=1 (--scale 1) is the standard size; use e.g. scale=0.1 for a "
            "smaller dataset.")


def check_bad_rate(bad_rate: float) -> None:
    """``bad_rate`` is a share of documents: from 0 to 1."""
    if not 0.0 <= bad_rate <= 1.0:
        raise UsageError(
            f"bad_rate must be between 0 and 1, not {bad_rate!r}",
            hint="bad_rate=0.05 (--bad-rate 0.05) gives 5% of the documents bad data.")
