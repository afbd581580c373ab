-- Staging and resuming (issue 14). The rows of a selection are inserted
-- staged: pending with next_attempt_at = 9223372036854775807 (i64::MAX), so
-- no claim (which takes next_attempt_at <= now) ever sees them, and they sit
-- at the far end of each lane's index, out of the claims' way. Once the
-- whole input is in, the selection is marked 'complete' and its rows are
-- released (next_attempt_at = 0) in bounded transactions, by the command
-- that queued them, or, if it stopped part-way, by the next zdel that works
-- the queue. A selection stopped while its input went in stays
-- 'interrupted' with every row staged: nothing of it is claimable until the
-- same command, run again, resumes it (same method, source hash, module and
-- request shape), or `zdel cancel --selection N` drops it.
--
-- Measured (bench/RESULTS.md, issue 14): the alternative, leaving rows
-- claimable and making claims skip rows of unfinished selections, cost
-- 5.2 s per claim while an interrupted selection's 5,000,000 rows lay ahead
-- in the lane (0.2 ms without). Staged rows are not indexed of their own:
-- a selection records the rowid range its rows went into and its release
-- walks that range (an index of them doubled what releasing costs).

-- "Already deleted on DATE": enqueue skips an ID whose target has a
-- succeeded row (unless --again). The expressions match
-- deletion_requests_one_live's.
CREATE INDEX deletion_requests_succeeded_target
    ON deletion_requests (operation, module, record_id,
                          coalesce(related_list, ''), coalesce(related_id, ''))
    WHERE state = 'succeeded';

-- selections, rebuilt (a CHECK cannot be altered in SQLite; the table is
-- small): a 'cancelled' state; the request shape a resume must match; the
-- IDs skipped as already deleted; for query selections, the pages fetched
-- and the cursor to resume from.
CREATE TABLE selections_new (
    id           INTEGER PRIMARY KEY,
    module       TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    method       TEXT    NOT NULL
                 CONSTRAINT selection_method_is_known CHECK (method = 'ids' OR method = 'file'
                        OR method = 'csv' OR method = 'coql' OR method = 'cvid' OR method = 'bulk'),
    source       TEXT,
    source_hash  TEXT,
    -- 'queueing' while its IDs go in (staged); 'complete' once all are in
    -- (released, or being released); 'interrupted' when the run stopped
    -- before that (its rows stay staged); 'cancelled' by zdel cancel.
    state        TEXT    NOT NULL DEFAULT 'queueing'
                 CONSTRAINT selection_state_is_known CHECK (state = 'queueing' OR state = 'complete'
                        OR state = 'interrupted' OR state = 'cancelled'),
    ids_found    INTEGER NOT NULL DEFAULT 0,
    ids_queued   INTEGER NOT NULL DEFAULT 0,
    -- IDs skipped because zdel had already deleted them (a succeeded row).
    ids_already_deleted INTEGER NOT NULL DEFAULT 0,
    -- What every queued request shares (operation, module, workflow,
    -- strategy, delink parent): a rerun resumes only the same shape.
    shape        TEXT,
    wf_trigger   INTEGER,
    strategy     TEXT,
    -- The rowids its rows went into (others' rows may lie between), and
    -- how far the release has walked: rows below released_up_to are
    -- claimable.
    first_row_id INTEGER,
    last_row_id  INTEGER,
    released_up_to INTEGER,
    -- Query selections: pages fetched so far, and where the next starts.
    pages        INTEGER NOT NULL DEFAULT 0,
    cursor       TEXT,
    os_user      TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
) STRICT;

INSERT INTO selections_new (id, module, operation, method, source, source_hash, state, ids_found,
                            ids_queued, os_user, host, created_at, finished_at)
SELECT id, module, operation, method, source, source_hash, state, ids_found, ids_queued,
       os_user, host, created_at, finished_at
FROM selections;

DROP TABLE selections;
ALTER TABLE selections_new RENAME TO selections;

-- A rerun looks for its unfinished selection by source.
CREATE INDEX selections_unfinished
    ON selections (source_hash) WHERE state = 'queueing' OR state = 'interrupted';
