"""Keeping secrets out of error messages and log lines.

Every text a connector puts in an exception or a log record passes through a Redactor: the
connector's own secrets (API keys, passwords) are replaced wherever they appear, and so is
anything that looks like a credential even when the connector did not know it (a service
that echoes the Authorization header back in its error, as stripe-mock does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import httpx

MASK = "[REDACTED]"
# Secrets shorter than this are not searched for: masking every "ab" would garble messages
# while hiding nothing an attacker could not guess.
MIN_SECRET_LENGTH = 4
# Each pattern keeps its `keep` group (the scheme or the parameter name) and masks the rest.
CREDENTIAL_PATTERNS = (
    re.compile(r"(?i)(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?P<keep>\bBasic\s+)[A-Za-z0-9+/]{8,}={0,2}"),
    re.compile(r"(?P<keep>)\b(sk|rk|pk|whsec)_(test|live)_[A-Za-z0-9]+"),
    re.compile(r"(?i)(?P<keep>\b(api[_-]?key|access[_-]?token|password|secret)=)[^&\s\"']+"),
)


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        known = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH}
        self._secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern in CREDENTIAL_PATTERNS:
            text = pattern.sub(rf"\g<keep>{MASK}", text)
        return text


def safe_url(url: httpx.URL | str) -> str:
    """The URL without user info or query string, where credentials like to hide."""
    parsed = httpx.URL(str(url))
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"
