"""``python -m lossnav``: the same command line as the ``lossnav`` console script."""
import sys

from lossnav.cli import main

sys.exit(main())
