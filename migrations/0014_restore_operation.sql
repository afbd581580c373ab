-- zdel restore: `restore` requests share the queue (leases, limits,
-- credits, retries, crash safety) with deletes. SQLite cannot change a
-- CHECK constraint in place, so the table is rebuilt with `restore` among
-- the known operations: every row, column, index and trigger as before
-- (about a minute per 5 million rows, once).
CREATE TABLE deletion_requests_new (
    id                 INTEGER PRIMARY KEY,
    operation          TEXT    NOT NULL DEFAULT 'delete'
                       CONSTRAINT operation_is_known CHECK (operation = 'delete' OR operation = 'delink'
                              OR operation = 'delete_contact_role' OR operation = 'delete_photo'
                              OR operation = 'restore'),
    module             TEXT    NOT NULL
                       CONSTRAINT module_is_an_api_name CHECK (length(module) BETWEEN 1 AND 100
                              AND module GLOB '[A-Za-z]*'
                              AND module NOT GLOB '*[^A-Za-z0-9_]*'),
    record_id          TEXT    NOT NULL
                       CONSTRAINT record_id_is_a_zoho_id CHECK (record_id GLOB '[1-9]*'
                              AND CAST(CAST(record_id AS INTEGER) AS TEXT) = record_id),
    related_list       TEXT
                       CONSTRAINT related_list_is_an_api_name CHECK (related_list IS NULL
                              OR (length(related_list) BETWEEN 1 AND 100
                                  AND related_list GLOB '[A-Za-z]*'
                                  AND related_list NOT GLOB '*[^A-Za-z0-9_]*')),
    related_id         TEXT
                       CONSTRAINT related_id_is_a_zoho_id CHECK (related_id IS NULL
                              OR (related_id GLOB '[1-9]*'
                                  AND CAST(CAST(related_id AS INTEGER) AS TEXT) = related_id)),
    wf_trigger         INTEGER NOT NULL DEFAULT 1
                       CONSTRAINT wf_trigger_is_0_or_1 CHECK (wf_trigger = 0 OR wf_trigger = 1),
    state              TEXT    NOT NULL DEFAULT 'pending'
                       CONSTRAINT state_is_known CHECK (state = 'pending' OR state = 'running'
                              OR state = 'succeeded' OR state = 'failed' OR state = 'cancelled'),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ambiguous_attempts INTEGER NOT NULL DEFAULT 0 CHECK (ambiguous_attempts >= 0),
    next_attempt_at    INTEGER NOT NULL DEFAULT 0,
    lease_owner        TEXT,
    lease_token        INTEGER,
    lease_expires_at   INTEGER,
    outcome_code       TEXT,
    outcome_message    TEXT,
    http_status        INTEGER,
    created_at         INTEGER NOT NULL
                       DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    updated_at         INTEGER NOT NULL
                       DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    finished_at        INTEGER,
    strategy           TEXT    NOT NULL DEFAULT 'auto'
                       CONSTRAINT strategy_is_known CHECK (strategy = 'auto' OR strategy = 'delete'
                              OR strategy = 'mass_delete'),
    lease_dry_run      INTEGER NOT NULL DEFAULT 0
                       CONSTRAINT lease_dry_run_is_0_or_1 CHECK (lease_dry_run = 0 OR lease_dry_run = 1),
    selection_id       INTEGER,
    verification       TEXT
                       CONSTRAINT verification_is_known
                       CHECK (verification IS NULL OR verification = 'verified' OR verification = 'not_in_recycle_bin'),
    verified_at        INTEGER,
    deleted_time       TEXT,
    deleted_by         TEXT,
    CONSTRAINT delink_needs_related_list_and_id CHECK ((operation = 'delink') = (related_list IS NOT NULL AND related_id IS NOT NULL)),
    CONSTRAINT running_rows_hold_a_lease CHECK ((state = 'running') = (lease_token IS NOT NULL)),
    CONSTRAINT finished_at_iff_terminal CHECK ((finished_at IS NULL) = (state = 'pending' OR state = 'running'))
) STRICT;

INSERT INTO deletion_requests_new
    (id, operation, module, record_id, related_list, related_id, wf_trigger, state, attempts,
     ambiguous_attempts, next_attempt_at, lease_owner, lease_token, lease_expires_at,
     outcome_code, outcome_message, http_status, created_at, updated_at, finished_at, strategy,
     lease_dry_run, selection_id, verification, verified_at, deleted_time, deleted_by)
SELECT id, operation, module, record_id, related_list, related_id, wf_trigger, state, attempts,
       ambiguous_attempts, next_attempt_at, lease_owner, lease_token, lease_expires_at,
       outcome_code, outcome_message, http_status, created_at, updated_at, finished_at, strategy,
       lease_dry_run, selection_id, verification, verified_at, deleted_time, deleted_by
FROM deletion_requests;

DROP TABLE deletion_requests;
ALTER TABLE deletion_requests_new RENAME TO deletion_requests;

CREATE INDEX deletion_requests_pending_lane
    ON deletion_requests (operation, module, wf_trigger, strategy, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX deletion_requests_pending_parent
    ON deletion_requests (operation, module, record_id, related_list, next_attempt_at)
    WHERE state = 'pending' AND operation = 'delink';
CREATE INDEX deletion_requests_running
    ON deletion_requests (lease_expires_at)
    WHERE state = 'running';
CREATE UNIQUE INDEX deletion_requests_one_live
    ON deletion_requests (operation, module, record_id,
                          coalesce(related_list, ''), coalesce(related_id, ''))
    WHERE finished_at IS NULL;
CREATE INDEX deletion_requests_finished
    ON deletion_requests (state, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX deletion_requests_retrying
    ON deletion_requests (updated_at)
    WHERE state = 'pending' AND outcome_code IS NOT NULL;
CREATE INDEX deletion_requests_succeeded_target
    ON deletion_requests (operation, module, record_id,
                          coalesce(related_list, ''), coalesce(related_id, ''))
    WHERE state = 'succeeded';

CREATE TRIGGER deletion_requests_counted_change
AFTER UPDATE OF state, finished_at, operation, module, wf_trigger, strategy ON deletion_requests
WHEN ((OLD.finished_at IS NULL) <> (NEW.finished_at IS NULL)
      OR (NEW.finished_at IS NOT NULL AND OLD.state IS NOT NEW.state)
      OR OLD.operation IS NOT NEW.operation OR OLD.module IS NOT NEW.module
      OR OLD.wf_trigger IS NOT NEW.wf_trigger OR OLD.strategy IS NOT NEW.strategy)
     AND OLD.id <= (SELECT counted_up_to FROM lane_count_mark)
BEGIN
    UPDATE lane_counts SET rows = rows - 1
    WHERE operation = OLD.operation AND module = OLD.module AND wf_trigger = OLD.wf_trigger
      AND strategy = OLD.strategy
      AND state = CASE WHEN OLD.finished_at IS NULL THEN 'live' ELSE OLD.state END;
    INSERT INTO lane_counts (operation, module, wf_trigger, strategy, state, rows)
    VALUES (NEW.operation, NEW.module, NEW.wf_trigger, NEW.strategy,
            CASE WHEN NEW.finished_at IS NULL THEN 'live' ELSE NEW.state END, 1)
    ON CONFLICT DO UPDATE SET rows = rows + 1;
    INSERT INTO finished_per_minute (minute, operation, module, state, rows)
    SELECT NEW.finished_at / 60000, NEW.operation, NEW.module, NEW.state, 1
    WHERE NEW.finished_at IS NOT NULL AND OLD.finished_at IS NULL
    ON CONFLICT DO UPDATE SET rows = rows + 1;
END;

CREATE TRIGGER deletion_requests_counted_delete
AFTER DELETE ON deletion_requests
BEGIN
    UPDATE lane_counts SET rows = rows - 1
    WHERE operation = OLD.operation AND module = OLD.module AND wf_trigger = OLD.wf_trigger
      AND strategy = OLD.strategy
      AND state = CASE WHEN OLD.finished_at IS NULL THEN 'live' ELSE OLD.state END
      AND OLD.id <= (SELECT counted_up_to FROM lane_count_mark);
    UPDATE lane_count_mark
    SET counted_up_to = (SELECT coalesce(max(id), 0) FROM deletion_requests)
    WHERE counted_up_to > (SELECT coalesce(max(id), 0) FROM deletion_requests);
END;
