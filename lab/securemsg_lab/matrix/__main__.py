"""`python -m securemsg_lab.matrix`: the interop matrix from the command line."""

import sys

from .run import main

sys.exit(main())
