"""`python -m losslandscape`: the command line."""

import sys

from losslandscape.cli import main

if __name__ == "__main__":
    sys.exit(main())
