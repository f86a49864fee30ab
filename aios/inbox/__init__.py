"""The operator's inbox: every item that needs a person, oldest first, with what settles it.

`items.py` turns one thing that waits (a run's state, an effect, a breaker, a stuck run) into
an `InboxItem` with its context, a suggested action and the one command that settles it;
`collect.py` gathers them from the Postgres mirrors and Temporal's visibility.
"""
