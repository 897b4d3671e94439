-- The change epoch: one number that every committed change to what FindImageForServing
-- answers for some image moves, in the same transaction as the change (a deleted image or
-- user, a user moved to another tier, a tier's heights or flags edited). Origins read it once
-- a second and keep image metadata for as long as it stays the same, instead of asking again
-- for every image every few seconds. It starts at the time of the migration in microseconds,
-- so a database made anew does not start where another one stood; only equality matters.
-- A change made by hand in SQL should move it too: UPDATE changes SET epoch = epoch + 1.

CREATE TABLE changes (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    epoch BIGINT  NOT NULL
);

INSERT INTO changes (id, epoch) VALUES (1, (extract(epoch FROM now()) * 1000000)::BIGINT);
