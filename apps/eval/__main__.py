"""``python -m libv4e_apps.eval`` = ``v4e eval``."""

import sys

from ..cli import main

sys.exit(main(["eval", *sys.argv[1:]]))
