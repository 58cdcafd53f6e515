#!/usr/bin/env python3
"""Entry point: `python3 client.py --help` (see PROTOCOL.md section 5).

Python puts this script's directory first on the import path, so `securemsg` is found
beside it, installed or not; the installed console script is `securemsg-client`.
"""

import sys

from securemsg.client import main

if __name__ == "__main__":
    sys.exit(main())
