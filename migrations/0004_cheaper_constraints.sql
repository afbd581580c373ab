-- The same queue, with constraints that cost less per row (measured: see
-- bench/RESULTS.md). SQLite has no ALTER for constraints, so the table is
-- rebuilt; rows, ids and every column are kept.
--
-- 1. `x IN ('a', 'b', …)` inside a CHECK builds a temporary table for every
--    row checked (~0.65 µs each, on every INSERT and every state change):
--    written as `x = 'a' OR x = 'b' …` instead, same meaning.
-- 2. `record_id NOT GLOB '*[^0-9]*'` cost ~0.85 µs a row. A Zoho record ID
--    is a positive 64-bit integer; the check is now that the text is exactly
--    such a number in plain decimal (no sign, no leading zero, at most
--    9223372036854775807): an anchored GLOB on the first digit and a round
--    trip through INTEGER (~0.1 µs).
-- 3. "Live" (one request per target) is keyed on `finished_at IS NULL`, so
--    claiming a row (pending → running) no longer rewrites that unique index.
--    A new check keeps the two in step: a row has finished_at exactly when it
--    is terminal (succeeded, failed, cancelled).

CREATE TABLE deletion_requests_new (
    id                 INTEGER PRIMARY KEY,
    operation          TEXT    NOT NULL DEFAULT 'delete'
                       CONSTRAINT operation_is_known CHECK (operation = 'delete' OR operation = 'delink'
                              OR operation = 'delete_contact_role' OR operation = 'delete_photo'),
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
    CONSTRAINT delink_needs_related_list_and_id CHECK ((operation = 'delink') = (related_list IS NOT NULL AND related_id IS NOT NULL)),
    CONSTRAINT running_rows_hold_a_lease CHECK ((state = 'running') = (lease_token IS NOT NULL)),
    CONSTRAINT finished_at_iff_terminal CHECK ((finished_at IS NULL) = (state = 'pending' OR state = 'running'))
) STRICT;

-- Terminal rows written by hand without finished_at get their last update
-- time; live rows never carry one.
INSERT INTO deletion_requests_new
    (id, operation, module, record_id, related_list, related_id, wf_trigger, state,
     attempts, ambiguous_attempts, next_attempt_at, lease_owner, lease_token, lease_expires_at,
     outcome_code, outcome_message, http_status, created_at, updated_at, finished_at, strategy)
SELECT id, operation, module, record_id, related_list, related_id, wf_trigger, state,
       attempts, ambiguous_attempts, next_attempt_at, lease_owner, lease_token, lease_expires_at,
       outcome_code, outcome_message, http_status, created_at, updated_at,
       CASE WHEN state = 'pending' OR state = 'running' THEN NULL
            ELSE coalesce(finished_at, updated_at) END,
       strategy
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
