"""`python -m tests.integration`: the interop matrix (same as `securemsg-matrix`)."""

import sys

from securemsg_lab.matrix.run import main

sys.exit(main())
