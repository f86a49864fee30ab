"""What automation is worth: per agent, the minutes its runs saved, net of a person's touches.

`ledger.py` counts from Postgres (the runs' mirrors and the audit trail); `figures.py` turns
the counts and each manifest's `value:` into the report's rows (pure arithmetic);
`window.py` reads `--since`.
"""
