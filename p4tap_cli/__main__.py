"""`python -m p4tap_cli ...`: the same as `p4tap ...` (see p4tap_cli/main.py)."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
