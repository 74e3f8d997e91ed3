"""``python -m gangline``: the same as the ``gangline`` command."""

from gangline.cli import main

main()
