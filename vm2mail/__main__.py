"""python -m vm2mail."""

import sys

from vm2mail.cli import main

sys.exit(main())
