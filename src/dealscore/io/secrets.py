"""Passwords never reach a log line, an error, an MLflow parameter or a tag."""

from __future__ import annotations

import re

MASK = "***"
# user:password@ in any URL (SQLAlchemy, JDBC, HTTP), and password-like query parameters. The
# password may hold "/", ":" or "#" (SQLAlchemy and libpq read it to the "@"), and a raw "@"
# too, mistakenly: everything up to the last "@" of the URL is masked, so no part of it shows.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):(?P<secret>[^\s]*)@")
_QUERY = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|secret|token|access_?key|sslpassword)=)[^&;\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with every URL password replaced by ***: user:pw@ and password=... forms."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
