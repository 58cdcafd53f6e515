"""`python3 -m tests.integration`: run the interop matrix from the command line."""

import sys

from .run import main

sys.exit(main())
