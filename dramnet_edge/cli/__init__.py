"""The ``dramnet-edge`` command line (click): the top layer. Nothing in the library imports this package.

One module per command group: ``infer`` (info, deblur), ``train`` (train, eval, pseudo-depth), ``export``,
``calibrate``, ``bench`` (validate, bench, quickstart); ``_common`` holds the one error decorator (``user_errors``:
a ``dramnet_edge.errors.UserError`` becomes one ``Error: ...`` line and exit code 2, anything else keeps its
traceback) and the option types every command shares.
"""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="dramnet-edge")
def main():
    """Train DRAMNet/AIBNet deblurring networks and deploy them to edge devices.

    \b
    Typical day:
      dramnet-edge train --config train/gopro.yaml --out runs/gopro
      dramnet-edge export --target tensorrt --int8 -o dramnet.engine
      dramnet-edge bench dramnet.engine --images photos/
    Run `dramnet-edge COMMAND --help` for each command.
    """


def _attach_commands() -> None:
    from . import bench, calibrate, export, infer, train

    for command in (infer.info, infer.deblur, *train.COMMANDS, export.export, calibrate.calibrate, *bench.COMMANDS):
        main.add_command(command)


_attach_commands()

__all__ = ["main"]
