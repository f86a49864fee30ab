"""Approvers as records, signed one-tap links, and the confirmation server.

`approvers.py` keeps each approver (email, webhook, quiet hours) with a secret sealed by the
project keyring; `links.py` makes and checks the tokens a notification's approve and reject
links carry (bound to run, step, verdict and approver, with an expiry, HMAC-signed, used
once); `server.py` is `aios approvals serve`, the page behind the links, which sends the
run's `decide` update on confirmation.
"""
