"""aios: a durable execution substrate for a one-person company's digital workforce."""

__version__ = "0.1.0"
