"""Range-checked click types for every numeric option: a bad value ends with click's one-line error naming the
value and the accepted range (``Invalid value for '--tau': -1.0 is not in the range 0<=x<=1.``), exit code 2,
before any work. ``nan`` and ``inf`` are refused where a finite number is needed: click's FloatRange lets NaN
through (every comparison with NaN is false).
"""

from __future__ import annotations

import math

import click

#: DRAMNet tiles: 14-pixel ViT patches on a feature map halved three times.
TILE_MULTIPLE = 112


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and +-inf."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{rv} is not a finite number; accepted: {self._describe_range()}", param, ctx)
        return rv


class MultipleOf(click.IntRange):
    """A positive int that is a multiple of ``step`` (tile sizes, crops)."""

    def __init__(self, step: int, reason: str = ""):
        super().__init__(min=step)
        self.step = step
        self.reason = reason

    def convert(self, value, param, ctx):
        rv = click.INT.convert(value, param, ctx)
        if rv < self.step or rv % self.step:
            why = f" ({self.reason})" if self.reason else ""
            self.fail(f"{rv} is not a positive multiple of {self.step}{why}; accepted: {self.step}, "
                      f"{2 * self.step}, {3 * self.step}, ...", param, ctx)
        return rv


#: Early-exit threshold: blur scores are sigmoid outputs.
TAU = FiniteFloatRange(0.0, 1.0)
#: A positive PSNR budget in dB.
BUDGET_DB = FiniteFloatRange(min=0.0, min_open=True)
TILE = MultipleOf(TILE_MULTIPLE, "14-pixel patches x 3 halvings")
POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
