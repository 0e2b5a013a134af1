"""What an SMTP rejection at send time says about the target's address."""

from __future__ import annotations

import re

# RFC 3463: X.1.Y are addressing status codes (bad mailbox, bad domain, …); a 5.1.x
# answer to RCPT means the address itself is wrong. Other permanent codes (5.7.1 relay
# denied, 5.5.x syntax) point at our own relay or account, not at the municipality.
_ENHANCED = re.compile(r"\b5\.1\.\d{1,3}\b")


def rejects_address(code: int | None, detail: str | None) -> bool:
    """True when a permanent SMTP reply says the recipient address does not exist."""
    if code is None or not 500 <= code < 600:
        return False
    if detail and _ENHANCED.search(detail):
        return True
    return code in (550, 553) and bool(detail) and _mentions_unknown_user(detail or "")


def _mentions_unknown_user(detail: str) -> bool:
    lowered = detail.lower()
    return any(
        phrase in lowered
        for phrase in (
            "user unknown",
            "no such user",
            "unknown user",
            "mailbox unavailable",
            "does not exist",
            "recipient address rejected",
        )
    )
