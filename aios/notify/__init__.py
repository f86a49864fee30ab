"""Notifications that reach a person: email (the SMTP connector) and a signed JSON webhook.

`message.py` writes what a notice says (with approve and reject links for a decision);
`webhook.py` posts it, HMAC-signed with the approver's secret; `delivery.py` sends each
(notice, recipient, channel) as an effect through the ledger, exactly once.
"""
