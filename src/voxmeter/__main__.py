"""``python -m voxmeter``: the same command as ``voxmeter``."""

from voxmeter.cli import main

main()
