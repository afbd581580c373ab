-- Every deletion the API offers: a per-row delete strategy (mass delete by
-- IDs), an index to batch delinks per parent record, and mass-delete jobs
-- over custom views. See README "Operations" and src/store/jobs.rs.

-- 'auto': use the config's zoho.delete_strategy. Rows with wf_trigger = 0
-- are always sent as plain deletes: mass delete cannot suppress workflows.
ALTER TABLE deletion_requests ADD COLUMN strategy TEXT NOT NULL DEFAULT 'auto'
    CONSTRAINT strategy_is_known CHECK (strategy IN ('auto', 'delete', 'mass_delete'));

-- Lanes are (operation, module, wf_trigger, strategy) now: the lane index
-- must lead with all four so lanes are found by skipping through it.
DROP INDEX deletion_requests_lane;
CREATE INDEX deletion_requests_lane
    ON deletion_requests (state, operation, module, wf_trigger, strategy, next_attempt_at);

-- Delinks are batched per (module, parent record, related list).
CREATE INDEX deletion_requests_parent
    ON deletion_requests (state, operation, module, record_id, related_list, next_attempt_at)
    WHERE operation = 'delink';

-- Mass delete of a whole custom view: an asynchronous Zoho job.
-- States (see src/store/jobs.rs for who moves a job out of each):
--   pending → scheduling (intent recorded, POST in flight) → running (job_id stored, polled)
--   → completed | failed; uncertain (the POST may or may not have reached Zoho);
--   cancelled (by an operator).
CREATE TABLE mass_delete_jobs (
    id                 INTEGER PRIMARY KEY,
    module             TEXT    NOT NULL
                       CONSTRAINT job_module_is_an_api_name CHECK (length(module) BETWEEN 1 AND 100
                              AND module GLOB '[A-Za-z]*'
                              AND module NOT GLOB '*[^A-Za-z0-9_]*'),
    cvid               TEXT    NOT NULL
                       CONSTRAINT cvid_is_1_to_19_digits CHECK (length(cvid) BETWEEN 1 AND 19
                              AND cvid NOT GLOB '*[^0-9]*'),
    territory_id       TEXT
                       CONSTRAINT territory_id_is_1_to_19_digits CHECK (territory_id IS NULL
                              OR (length(territory_id) BETWEEN 1 AND 19
                                  AND territory_id NOT GLOB '*[^0-9]*')),
    include_child      INTEGER NOT NULL DEFAULT 0 CONSTRAINT include_child_is_0_or_1 CHECK (include_child IN (0, 1)),
    state              TEXT    NOT NULL DEFAULT 'pending'
                       CONSTRAINT job_state_is_known CHECK (state IN
                           ('pending', 'scheduling', 'running', 'completed', 'failed', 'uncertain', 'cancelled')),
    job_id             TEXT,
    zoho_status        TEXT,
    total_count        INTEGER,
    deleted_count      INTEGER,
    failed_count       INTEGER,
    post_attempts      INTEGER NOT NULL DEFAULT 0,
    polls              INTEGER NOT NULL DEFAULT 0,
    -- When the job may next be posted (pending) or polled (running), epoch ms.
    next_action_at     INTEGER NOT NULL DEFAULT 0,
    lease_owner        TEXT,
    lease_expires_at   INTEGER,
    last_error         TEXT,
    created_at         INTEGER NOT NULL
                       DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    updated_at         INTEGER NOT NULL
                       DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    scheduled_at       INTEGER,
    finished_at        INTEGER,
    CONSTRAINT running_jobs_have_a_job_id CHECK (state <> 'running' OR job_id IS NOT NULL)
) STRICT;

-- The same view (and territory) is never queued twice while a job for it is live.
CREATE UNIQUE INDEX mass_delete_jobs_one_live
    ON mass_delete_jobs (module, cvid, coalesce(territory_id, ''))
    WHERE state IN ('pending', 'scheduling', 'running', 'uncertain');

CREATE INDEX mass_delete_jobs_due ON mass_delete_jobs (state, next_action_at);
