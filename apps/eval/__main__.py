"""``python -m apps.eval`` = ``v4e eval``."""

import sys

from apps.cli import main

sys.exit(main(["eval", *sys.argv[1:]]))
