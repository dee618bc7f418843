"""``python -m apps``: the same as ``v4e``."""

import sys

from apps.cli import main

sys.exit(main())
