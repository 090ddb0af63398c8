"""Console sessions: log in with an API token, get an HttpOnly SameSite=Strict cookie (Secure over TLS).

Sessions live in the server's memory: the cookie holds a random id, the server keeps the token's
secret (so a revoked token ends its sessions at the next request) and a CSRF token that every form
must send back. Failed logins are throttled per client address.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from trailseal.api.auth import Token, TokenStore

COOKIE = "ts_session"
IDLE_SECONDS = 3600.0
MAX_AGE_SECONDS = 12 * 3600.0
FAILED_LOGINS = 10  # per client address per FAILURE_WINDOW
FAILURE_WINDOW = 300.0


@dataclass
class Session:
    id: str
    secret: str  # the API token, kept server-side only
    csrf: str
    created: float
    seen: float
    digests: dict[str, str] = field(default_factory=dict)  # live fragment path -> digest last sent


class Sessions:
    """Every open console session of one server."""

    def __init__(self, tokens: TokenStore):
        self.tokens = tokens
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def open(self, secret: str) -> tuple[Session, Token] | None:
        """A new session for a valid token, else None."""
        token = self.tokens.lookup(secret)
        if token is None or token.revoked:
            return None
        now = time.monotonic()
        session = Session(secrets.token_urlsafe(32), secret, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._expire(now)
            self._sessions[session.id] = session
        return session, token

    def find(self, session_id: str | None) -> tuple[Session, Token] | None:
        """The live session and its (still valid) token, or None."""
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or now - session.seen > IDLE_SECONDS or now - session.created > MAX_AGE_SECONDS:
                self._sessions.pop(session_id, None)
                return None
            session.seen = now
        token = self.tokens.lookup(session.secret)
        if token is None or token.revoked:
            self.close(session_id)
            return None
        return session, token

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        stale = [k for k, s in self._sessions.items() if now - s.seen > IDLE_SECONDS]
        for key in stale:
            del self._sessions[key]

    def throttled(self, client: str) -> bool:
        """Whether this address failed to log in too often lately."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            while failures and now - failures[0] > FAILURE_WINDOW:
                failures.popleft()
            return bool(failures) and len(failures) >= FAILED_LOGINS

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, deque(maxlen=FAILED_LOGINS)).append(time.monotonic())


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), str(sent).encode())


def sessions(svc) -> Sessions:
    """This server's sessions (made on first use)."""
    found = svc.extras.get("ui_sessions")
    if found is None:
        found = svc.extras.setdefault("ui_sessions", Sessions(svc.tokens))
    return found
