"""`python -m losslandscape`: the command line."""

import sys

from losslandscape.cli import main

sys.exit(main())
