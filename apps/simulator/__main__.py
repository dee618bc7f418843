"""``python -m libv4e_apps.simulator``: the same as ``v4e sim``."""

import sys

from ..cli import main

sys.exit(main(["sim", *sys.argv[1:]]))
