"""The ``lienthong`` command's exit codes: one table for every command (README, "Exit codes"; decision 0015).

A script tells "the command worked and found something wrong" (1) from "it could not do its work"
(2: fix the command line or the files it names; 3: the store, try again when it is back).
"""

from __future__ import annotations

EXIT_OK = 0
"""The command did what was asked and found nothing wrong."""
EXIT_FAILED = 1
"""The command ran and found problems: a config with errors (``check``), a destination that failed
(``check --connect``), a record a mapping refused, a golden case that failed, a run that failed or was
refused, dead letters that would fail again (``dlq replay --dry-run``), a bank file that cannot be read
as a statement, deliveries still pending at the end of the demo."""
EXIT_USAGE = 2
"""Nothing was done: wrong arguments, a file that cannot be read or a config that does not load, a name
that names nothing (destination, job, layout, message)."""
EXIT_STORE = 3
"""The store cannot be used: none where one is expected, its schema unknown, it does not answer."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT), as shells report it."""
EXIT_BROKEN_PIPE = 141
"""The reader of the output went away (``lienthong dlq list … | head``; 128 + SIGPIPE); nothing else
is written."""

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "ok",
    EXIT_FAILED: "the command ran and found problems",
    EXIT_USAGE: "usage or input error: nothing was done",
    EXIT_STORE: "the store cannot be used",
    EXIT_INTERRUPTED: "interrupted",
    EXIT_BROKEN_PIPE: "the output's reader went away",
}
