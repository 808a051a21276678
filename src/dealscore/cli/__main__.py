"""`python -m dealscore.cli`: the command line, as `python -m dealscore` runs it."""

import sys

from dealscore.cli import app

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
