"""`python -m netdash`."""

import sys

from netdash.cli import main

sys.exit(main())
