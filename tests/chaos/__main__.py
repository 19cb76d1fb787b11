"""`python -m tests.chaos [--quick] [--seed N]` (what `make chaos` runs)."""

import sys

from tests.chaos.run import main

sys.exit(main())
