"""`python -m controller.cli ...`: the old way to run `p4tap`, kept so that
scripts and branches that still use it keep working.

The command line now lives in :mod:`p4tap_cli`, above controller/, mib_bridge/
and mediation/ (it needs all three). This module imports it only when run as
a script, so importing anything in controller/ never reaches up to the floors
above it.
"""

import sys

if __name__ == "__main__":
    from p4tap_cli import main

    sys.exit(main())
