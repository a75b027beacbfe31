"""python -m mib_bridge: see mib_bridge/cli.py."""

import sys

from mib_bridge.cli import main

sys.exit(main())
