"""``python -m specgraph.cli``: the same as the ``specgraph`` command."""

from . import main

main()
