#!/usr/bin/env python3
"""The unattended service: `python scheduler.py [--sources FILE] [--db URL] [--once]`.

Thin on purpose: it is `ingest schedule` (src/ingest/service/scheduler.py) under the
name DESIGN.md gives it.  Run it with the project's interpreter
(`.venv/bin/python scheduler.py`); see docs/deploying.md.
"""

import sys

from ingest.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["schedule", *sys.argv[1:]]))
