-- Web sign-in sessions, the sign-in failure throttle, and a hint to tell API tokens apart.

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Hex SHA-256 of the cookie's token, as for API tokens: the plaintext is never stored.
    token_hash   TEXT    NOT NULL UNIQUE,
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    user_agent   TEXT    NOT NULL,
    address      TEXT    NOT NULL
);

-- Serves a user's session list and "sign out everywhere".
CREATE INDEX sessions_user_id ON sessions (user_id);
-- Serve DeleteExpiredSessions: a session goes when either its absolute or its idle expiry
-- has passed, and each side of the OR is a range scan of one of these.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);

-- Failed sign-ins per key ("user:alice", "addr:192.0.2.1"), counted in a fixed window that
-- starts at the first failure.
CREATE TABLE login_failures (
    key          TEXT    NOT NULL PRIMARY KEY,
    count        INTEGER NOT NULL,
    window_start INTEGER NOT NULL
);

-- Serves DeleteStaleLoginFailures.
CREATE INDEX login_failures_window_start ON login_failures (window_start);

-- TokenPrefix and the first 4 characters of the secret, to tell tokens apart in lists.
-- Tokens minted before this migration have none.
ALTER TABLE tokens ADD COLUMN hint TEXT NOT NULL DEFAULT '';
