-- Serve the admin's user list in each of its orders: one index per sortable column, each
-- ending with the unique username so that the order is total and a keyset page starts with a
-- range of the index, in either direction. The username's own order is served by its unique
-- index. users_tier is a prefix of users_tier_username, which serves what it served.

CREATE INDEX users_tier_username ON users (tier, username);
CREATE INDEX users_is_admin_username ON users (is_admin, username);
CREATE INDEX users_created_at_username ON users (created_at, username);

DROP INDEX users_tier;
