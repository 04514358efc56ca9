"""What every command shares: the one error decorator, the range-checked option types, the ``--model`` check.

Errors: ``user_errors`` turns a ``dramnet_edge.errors.UserError`` (and its ``MissingExtraError``) raised by a command
into click's one-line ``Error: ...`` and exit code 2; any other exception is a bug and keeps its traceback. Every
command is wrapped with it, so a command behaves the same attached to the group or invoked on its own.

Option types: a bad value ends with click's one-line error naming the value and the accepted range
(``Invalid value for '--tau': -1.0 is not in the range 0<=x<=1.``), exit code 2, before any work. ``nan`` and ``inf``
are refused where a finite number is needed: click's FloatRange lets NaN through (every comparison with NaN is false).
"""

from __future__ import annotations

import functools
import math

import click

from ..errors import UserError, first_line
from ..weights import EMBEDDED_DEFAULT as DEFAULT_MODEL  # noqa: F401  (the model every command runs by default)

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


def user_errors(fn):
    """Run the command body ``fn``; a ``UserError`` becomes click's one-line usage error (exit code 2). Nothing
    else is caught: another exception is a bug, and its traceback is what a report needs."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise click.UsageError(first_line(e)) from None

    return wrapper


def echo_err(msg: str) -> None:
    click.echo(msg, err=True)


def _model_callback(exportable: bool):
    def callback(ctx, param, value):
        if value is None:
            return value
        from ..models.registry import check_model_name

        try:
            return check_model_name(value, exportable=exportable)
        except UserError as e:
            raise click.BadParameter(first_line(e)) from None

    return callback


#: ``--model`` callbacks: any registered variant, or only those ``export``/``calibrate`` accept (DRAMNet).
validate_model = _model_callback(exportable=False)
validate_export_model = _model_callback(exportable=True)


def deblur_backend_choices() -> list[str]:
    """``--backend`` choices for deblur: torch first, then every backend of the formats table."""
    from ..export.formats import backend_names

    return ["torch", *backend_names()]
