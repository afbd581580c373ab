-- The deletion queue. This table is a public interface: operators fill it with
-- a bare INSERT (module, record_id) and read outcomes from it. See README.md
-- "The SQL interface" and src/store/mod.rs for the state machine.
--
-- Times are INTEGER epoch milliseconds. Defaults use julianday(), not
-- unixepoch('subsec'), so that an operator's older sqlite3 CLI (3.40 on
-- Debian 12) can still INSERT rows.

CREATE TABLE deletion_requests (
    id                 INTEGER PRIMARY KEY,
    operation          TEXT    NOT NULL DEFAULT 'delete'
                       CONSTRAINT operation_is_known CHECK (operation IN ('delete', 'delink', 'delete_contact_role', 'delete_photo')),
    module             TEXT    NOT NULL
                       CONSTRAINT module_is_an_api_name CHECK (length(module) BETWEEN 1 AND 100
                              AND module GLOB '[A-Za-z]*'
                              AND module NOT GLOB '*[^A-Za-z0-9_]*'),
    record_id          TEXT    NOT NULL
                       CONSTRAINT record_id_is_1_to_19_digits CHECK (length(record_id) BETWEEN 1 AND 19
                              AND record_id NOT GLOB '*[^0-9]*'),
    -- Only for operation = 'delink': the related list and the related record to unlink.
    related_list       TEXT
                       CONSTRAINT related_list_is_an_api_name CHECK (related_list IS NULL
                              OR (length(related_list) BETWEEN 1 AND 100
                                  AND related_list GLOB '[A-Za-z]*'
                                  AND related_list NOT GLOB '*[^A-Za-z0-9_]*')),
    related_id         TEXT
                       CONSTRAINT related_id_is_1_to_19_digits CHECK (related_id IS NULL
                              OR (length(related_id) BETWEEN 1 AND 19
                                  AND related_id NOT GLOB '*[^0-9]*')),
    wf_trigger         INTEGER NOT NULL DEFAULT 1 CONSTRAINT wf_trigger_is_0_or_1 CHECK (wf_trigger IN (0, 1)),
    state              TEXT    NOT NULL DEFAULT 'pending'
                       CONSTRAINT state_is_known CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Attempts that ended without a usable answer (timeout, dropped connection,
    -- 5xx, a crash or shutdown mid-call): Zoho may have deleted the record.
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
    CONSTRAINT delink_needs_related_list_and_id CHECK ((operation = 'delink') = (related_list IS NOT NULL AND related_id IS NOT NULL)),
    CONSTRAINT running_rows_hold_a_lease CHECK ((state = 'running') = (lease_token IS NOT NULL))
) STRICT;

-- Claims walk one lane (operation, module, wf_trigger) in due order.
CREATE INDEX deletion_requests_lane
    ON deletion_requests (state, operation, module, wf_trigger, next_attempt_at);

-- Leases are fenced and reaped by token and expiry.
CREATE INDEX deletion_requests_lease
    ON deletion_requests (lease_token) WHERE lease_token IS NOT NULL;

-- One live request per target: a duplicate INSERT of a pending or running
-- request fails in the database itself (the CLI skips it and counts it).
CREATE UNIQUE INDEX deletion_requests_one_live
    ON deletion_requests (operation, module, record_id,
                          coalesce(related_list, ''), coalesce(related_id, ''))
    WHERE state IN ('pending', 'running');

CREATE INDEX deletion_requests_finished
    ON deletion_requests (state, finished_at) WHERE finished_at IS NOT NULL;

-- Lanes paused by a whole-call error. scope is a module name, or '*' when
-- every lane is paused (the refresh token or client was rejected).
CREATE TABLE pauses (
    scope      TEXT    PRIMARY KEY,
    code       TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    paused_at  INTEGER NOT NULL
) STRICT;
