"""``python -m sclatent``: the command line (see :mod:`sclatent._cli`)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
