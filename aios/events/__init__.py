"""Events that start runs (docs/ARCHITECTURE.md, decision 15): the outbox (outbox.py), the bus
that stores and dispatches them (bus.py), subscriptions applied from manifests
(subscriptions.py), and the inbound channels: signed HTTP (http.py) and mail (mail.py)."""
