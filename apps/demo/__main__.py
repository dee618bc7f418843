"""``python -m libv4e_apps.demo``: the same as ``v4e demo``."""

import sys

from ..cli import main

sys.exit(main(["demo", *sys.argv[1:]]))
