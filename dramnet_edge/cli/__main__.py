"""``python -m dramnet_edge.cli``: the same as the ``dramnet-edge`` console script."""

from . import main

main()
