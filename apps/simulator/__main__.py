"""``python -m apps.simulator``: the same as ``v4e sim``."""

import sys

from apps.cli import main

sys.exit(main(["sim", *sys.argv[1:]]))
