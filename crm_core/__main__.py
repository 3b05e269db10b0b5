"""Entry point for `python -m crm_core`."""

import sys

from crm_core.cli import main

sys.exit(main())
