"""``python -m lienthong.cli``: the same as the ``lienthong`` command."""

import sys

from lienthong.cli import main

sys.exit(main())
