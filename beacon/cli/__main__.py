"""``python -m beacon.cli``."""

from beacon.cli import main

main()
