"""``python -m gangline``: the same as the ``gangline`` command."""

from gangline.cli.app import main

main()
