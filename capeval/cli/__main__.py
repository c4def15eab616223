"""`python -m capeval.cli`: the same as the `capeval` command (useful under accelerate launch / torchrun)."""

import sys

from capeval.cli import main

sys.exit(main())
