"""``python -m threadkit``: the same command line as the ``threadkit`` script."""

from __future__ import annotations

import sys

from threadkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
