"""Drift alarms: has an agent version's behaviour moved from its own past, or a canary's from live?

`stats.py` holds the statistics (pure, with the thresholds and why), `facts.py` reads per-run
facts from the run mirrors, `compare.py` compares two sets of runs metric by metric,
`check.py` runs the daily check and records alarms in the audit trail, `inbox.py` shows them
in the operator's inbox, `schedule.py` is the daily Temporal Schedule (`aios-drift`).
"""
