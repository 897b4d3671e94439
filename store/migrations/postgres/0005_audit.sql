-- The audit log: one row per change the services made (see tierpix.Change), written in the
-- transaction of the change. Nothing references it and it references nothing, so it outlives
-- the users, tiers and images it names; the retention sweep deletes old rows by at.

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT  NOT NULL,
    actor_id    BIGINT  NOT NULL,  -- 0: the operator at the command line
    actor       TEXT    NOT NULL,  -- '' for the operator
    action      TEXT    NOT NULL,
    object_type TEXT    NOT NULL,
    object_id   TEXT    NOT NULL,
    object_repr TEXT    NOT NULL,
    fields      TEXT    NOT NULL   -- JSON array of tierpix.FieldChange
);

-- Serve the history of one object and the filters by actor and action, newest first, and
-- the retention sweep.
CREATE INDEX audit_log_object ON audit_log (object_type, object_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_at ON audit_log (at);
