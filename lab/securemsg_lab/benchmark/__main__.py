"""`python -m securemsg_lab.benchmark`: the same as `securemsg-bench`."""

import sys

from .bench import main

sys.exit(main())
