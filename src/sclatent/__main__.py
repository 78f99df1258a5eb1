"""``python -m sclatent``: the command line (see :mod:`sclatent.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
