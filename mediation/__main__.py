"""`python -m mediation ...`: the same as `p4tap md ...` (see mediation/cli.py)."""

import sys

from mediation.cli import main

sys.exit(main())
