"""`python -m securemsg_lab.demo` (= `securemsg-demo`): the instructor demo."""

import sys

from .cli import main

sys.exit(main())
