"""``python -m digest``: the same entry point as the ``digest`` command."""

from digest.cli import main

main()
