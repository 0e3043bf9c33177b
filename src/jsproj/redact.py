"""Passwords out of text: every log line and error message that may carry a DSN goes through :func:`redact`.

libpq repeats a connection string it could not parse in its error
(``missing "]" in IPv6 host address in URI: "postgresql://bob:SECRET@[::1/db"``),
and a DSN can reach a message in other ways (a traceback, a pool's reason).
:func:`redact` replaces the password of the DSNs it is told of (``dsn=``, or
:func:`remember`) wherever it appears, and any password it recognises by its
shape: a URL's ``user:password@`` and a keyword ``password=...``.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import unquote

import psycopg

MASK = "***"

# scheme://user:password@  (the password up to the last @ before the host part; no spaces or quotes)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@\"'\[]*:)[^\s\"']*?(@)", re.IGNORECASE)
# password=value  or  password = 'quoted \' value'  (libpq's keyword form)
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s\"']+)", re.IGNORECASE)
# the password of a URL libpq could not parse (the host part malformed)
_URL_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\[]*:(.*)@", re.IGNORECASE | re.DOTALL)

_known: set[str] = set()
_lock = threading.Lock()


def passwords(dsn: str) -> set[str]:
    """The password a DSN gives, as written and decoded (empty when it gives none)."""
    found: set[str] = set()
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        password = None
    if isinstance(password, str) and password:
        found.add(password)
    match = _URL_USERINFO.match(dsn.strip())
    if match and match[1]:
        found |= {match[1], unquote(match[1])}
    return {p for p in found if p}


def remember(dsn: str | None) -> None:
    """Have every later :func:`redact` hide this DSN's password too (the CLI's ``--dsn``, ``JSPROJ_DSN``)."""
    if dsn:
        found = passwords(dsn)
        with _lock:
            _known.update(found)


def redact(text: str, dsn: str | None = None) -> str:
    """``text`` without the password of ``dsn``, of any remembered DSN, or of any DSN written in it."""
    with _lock:
        secrets = set(_known)
    if dsn:
        secrets |= passwords(dsn)
    # The known passwords first, whole (a pattern could cut one at a quote or an @ and leave its tail).
    for secret in sorted(secrets, key=len, reverse=True):  # a longer one first: it may contain a shorter
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m[1] + MASK + m[2], text)
    return _KEYWORD_PASSWORD.sub(lambda m: m[1] + MASK, text)
