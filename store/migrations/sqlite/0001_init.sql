-- Tables for tiers, users, tokens and images, and the builtin tiers.
-- Times are Unix microseconds UTC: exact, and ordered the same way in every dialect.

CREATE TABLE tiers (
    name              TEXT    NOT NULL PRIMARY KEY,
    thumbnail_heights TEXT    NOT NULL,
    original_link     INTEGER NOT NULL CHECK (original_link IN (0, 1)),
    expiring_links    INTEGER NOT NULL CHECK (expiring_links IN (0, 1)),
    builtin           INTEGER NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1)),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- Tier names are unique and looked up case-insensitively.
CREATE UNIQUE INDEX tiers_name_key ON tiers (lower(name));

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    -- NO ACTION rather than RESTRICT: the same refusal at the end of the statement, but
    -- reported as SQLITE_CONSTRAINT_FOREIGNKEY (RESTRICT reports SQLITE_CONSTRAINT_TRIGGER).
    tier          TEXT    NOT NULL REFERENCES tiers (name),
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE INDEX users_tier ON users (tier);

CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE INDEX tokens_user_id ON tokens (user_id);

CREATE TABLE images (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    format     TEXT    NOT NULL CHECK (format IN ('jpeg', 'png')),
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Serves ListImages: one owner's images, newest first, keyset on seq.
CREATE INDEX images_owner_seq ON images (owner_id, seq DESC);

INSERT INTO tiers (name, thumbnail_heights, original_link, expiring_links, builtin, created_at, updated_at)
VALUES
    ('Basic',      '[200]',     0, 0, 1, CAST(unixepoch('subsec') * 1000000 AS INTEGER), CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('Premium',    '[200,400]', 1, 0, 1, CAST(unixepoch('subsec') * 1000000 AS INTEGER), CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('Enterprise', '[200,400]', 1, 1, 1, CAST(unixepoch('subsec') * 1000000 AS INTEGER), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
