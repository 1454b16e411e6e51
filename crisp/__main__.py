"""`python -m crisp` runs the command line."""

import sys

from crisp.cli import main

sys.exit(main())
