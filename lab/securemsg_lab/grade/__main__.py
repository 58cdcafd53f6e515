"""python -m securemsg_lab.grade: securemsg-grade."""

import sys

from .cli import main

sys.exit(main())
