-- Addresses each user signed in from, and when last: the sign-in throttle exempts an account's
-- recent addresses from the account-wide failure limit, so that guessing from elsewhere cannot
-- lock the owner out.

CREATE TABLE signin_addresses (
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address      TEXT    NOT NULL,
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, address)
);

-- Serves DeleteStaleSignInAddresses.
CREATE INDEX signin_addresses_last_seen_at ON signin_addresses (last_seen_at);
