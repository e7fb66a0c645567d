"""The CLI's exit codes: a public contract that scripts and cron jobs rely on."""

OK = 0
REFUSED = 1  # findings, or refused by a safety guard
USAGE = 2  # usage or configuration error; nothing was started or sent
BUSY = 75  # the execution lease is held by someone else (EX_TEMPFAIL)
