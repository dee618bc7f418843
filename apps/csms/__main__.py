"""``python -m apps.csms``: the same as ``v4e csms``."""

import sys

from apps.cli import main

sys.exit(main(["csms", *sys.argv[1:]]))
