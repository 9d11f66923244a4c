"""``python -m hesslib.cli`` (or ``torchrun … -m hesslib.cli``): :mod:`hesslib.distributed.cli`."""

import sys

from .distributed.cli import main

if __name__ == "__main__":
    sys.exit(main())
