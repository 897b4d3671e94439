-- Tables for tiers, users, tokens and images, and the builtin tiers.
-- Times are Unix microseconds UTC: exact, and ordered the same way in every dialect.
-- Names use the "C" collation so that ordering and keyset pagination match SQLite's
-- byte order whatever the database's locale.

CREATE TABLE tiers (
    name              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    thumbnail_heights TEXT    NOT NULL,
    original_link     BOOLEAN NOT NULL,
    expiring_links    BOOLEAN NOT NULL,
    builtin           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL
);

-- Tier names are unique and looked up case-insensitively.
CREATE UNIQUE INDEX tiers_name_key ON tiers (lower(name));

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    tier          TEXT COLLATE "C" NOT NULL REFERENCES tiers (name) ON DELETE RESTRICT,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE INDEX users_tier ON users (tier);

CREATE TABLE tokens (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE INDEX tokens_user_id ON tokens (user_id);

CREATE TABLE images (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    owner_id   BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    format     TEXT    NOT NULL CHECK (format IN ('jpeg', 'png')),
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    size_bytes BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL
);

-- Serves ListImages: one owner's images, newest first, keyset on seq.
CREATE INDEX images_owner_seq ON images (owner_id, seq DESC);

INSERT INTO tiers (name, thumbnail_heights, original_link, expiring_links, builtin, created_at, updated_at)
VALUES
    ('Basic',      '[200]',     FALSE, FALSE, TRUE, (extract(epoch FROM now()) * 1000000)::BIGINT, (extract(epoch FROM now()) * 1000000)::BIGINT),
    ('Premium',    '[200,400]', TRUE,  FALSE, TRUE, (extract(epoch FROM now()) * 1000000)::BIGINT, (extract(epoch FROM now()) * 1000000)::BIGINT),
    ('Enterprise', '[200,400]', TRUE,  TRUE,  TRUE, (extract(epoch FROM now()) * 1000000)::BIGINT, (extract(epoch FROM now()) * 1000000)::BIGINT);
