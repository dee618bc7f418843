"""``python -m libv4e_apps.csms``: the same as ``v4e csms``."""

import sys

from ..cli import main

sys.exit(main(["csms", *sys.argv[1:]]))
