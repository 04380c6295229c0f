"""Keep the token out of text: GREEN-API puts it in the URL path, so any URL is a leak."""

from __future__ import annotations

import logging
import re

REDACTED = "***"

# /waInstance{id}/{method}/{token}[/...] and the partner API's /partner/{method}/{partnerToken}:
# the segment after the method is the token.
_TOKEN_IN_PATH = re.compile(r"(/(?:waInstance\d+|partner)/[A-Za-z]+/)[^/?#\s\"'<>]+")


def redact_url_text(text: str) -> str:
    """Replace the token segment of every GREEN-API path (instance or partner) in ``text``."""
    return _TOKEN_IN_PATH.sub(lambda m: m.group(1) + REDACTED, text)


class RedactTokenFilter(logging.Filter):
    """Rewrites records of the httpx/httpcore loggers, which log each request URL at INFO/DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = redact_url_text(record.getMessage())
            record.args = None
        elif isinstance(record.msg, str):
            record.msg = redact_url_text(record.msg)
        return True


_INSTALLED = False


def install_log_redaction() -> None:
    """Attach the filter to the loggers that print request URLs. Idempotent."""
    global _INSTALLED
    if _INSTALLED:
        return
    for name in ("httpx", "httpcore", "httpcore.http11", "httpcore.connection", "httpcore.http2"):
        logging.getLogger(name).addFilter(RedactTokenFilter())
    _INSTALLED = True
