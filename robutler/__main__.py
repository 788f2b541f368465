"""`python -m robutler serve ...`."""

import sys

from robutler.cli import main

sys.exit(main())
