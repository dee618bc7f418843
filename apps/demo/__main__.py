"""``python -m apps.demo``: the same as ``v4e demo``."""

import sys

from apps.cli import main

sys.exit(main(["demo", *sys.argv[1:]]))
