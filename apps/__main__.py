"""``python -m libv4e_apps``: the same as ``v4e``."""

import sys

from .cli import main

sys.exit(main())
