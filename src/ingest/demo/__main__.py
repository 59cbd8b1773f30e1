"""`python -m ingest.demo` (what `make demo` runs): see `ingest.demo`."""

import sys

from ingest.demo import main

sys.exit(main())
