-- Selections (issue 14): every set of IDs put in the queue, and how it was
-- chosen. `zdel enqueue` records one per run (method 'ids', 'file' or
-- 'csv', with the file's name and SHA-256); `zdel select` will add
-- 'coql', 'cvid' and 'bulk'. Each request names its selection
-- (deletion_requests.selection_id; NULL for rows inserted by plain SQL), so
-- outcomes, retry and cancel can take `--selection N`.
--
-- state: 'queueing' while its IDs go in; 'complete' once all are in;
-- 'interrupted' when the run stopped before that (what was committed stays
-- queued: running the same command again adds the rest, in a new
-- selection).
CREATE TABLE selections (
    id           INTEGER PRIMARY KEY,
    module       TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    method       TEXT    NOT NULL
                 CONSTRAINT selection_method_is_known CHECK (method = 'ids' OR method = 'file'
                        OR method = 'csv' OR method = 'coql' OR method = 'cvid' OR method = 'bulk'),
    -- The file's name, the query, or the view id.
    source       TEXT,
    -- SHA-256 of the file read, hex (file and csv).
    source_hash  TEXT,
    state        TEXT    NOT NULL DEFAULT 'queueing'
                 CONSTRAINT selection_state_is_known CHECK (state = 'queueing' OR state = 'complete'
                        OR state = 'interrupted'),
    -- IDs read from the source, and of them queued (the rest were already live).
    ids_found    INTEGER NOT NULL DEFAULT 0,
    ids_queued   INTEGER NOT NULL DEFAULT 0,
    -- Who ran it: the OS user, and the host.
    os_user      TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
) STRICT;

ALTER TABLE deletion_requests ADD COLUMN selection_id INTEGER;
