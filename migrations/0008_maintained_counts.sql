-- Counts that `zdel status` reads without scanning the queue (issue 13):
-- at 5,000,000 rows a GROUP BY over the table took 9 s.
--
-- lane_counts: rows per lane (operation, module, wf_trigger, strategy) and
-- counted state — 'live' (pending or running: not finished), 'succeeded',
-- 'failed', 'cancelled' — for every row with id <= lane_count_mark.
-- counted_up_to. Triggers keep it exact as rows finish, are requeued, change
-- lane or are deleted. Claims and retries (pending <-> running) change no
-- count: the running rows are few (at most the call slots' batches) and are
-- counted from their partial index when read. Measured, a trigger on every
-- state change cost the single writer ~30% of its ceiling; this way only a
-- row's finish costs it.
--
-- Inserts fire no trigger either (one per inserted row would slow `zdel
-- enqueue` down badly): rows above the mark are not counted yet, and
-- whoever reads the counts adds them from the table (a rowid range: few
-- rows). `zdel enqueue` counts what it inserts itself and moves the mark in
-- the same transaction; the worker folds rows inserted by plain SQL in as
-- it goes (Store::fold_counts). A trigger leaves rows above the mark alone:
-- the fold counts them in the state they are in by then.
--
-- finished_per_minute: rows that reached a terminal state, per minute
-- (epoch ms / 60000) of finished_at, lane (operation, module) and state:
-- the daily cap's rolling 24 hours and each lane's current rate. Never
-- decremented: a success stays counted against the cap even if its row is
-- deleted or requeued later. Minutes older than two days are pruned by the
-- worker.

CREATE TABLE lane_counts (
    operation   TEXT    NOT NULL,
    module      TEXT    NOT NULL,
    wf_trigger  INTEGER NOT NULL,
    strategy    TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    rows        INTEGER NOT NULL,
    PRIMARY KEY (operation, module, wf_trigger, strategy, state)
) STRICT, WITHOUT ROWID;

CREATE TABLE lane_count_mark (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    counted_up_to INTEGER NOT NULL
) STRICT;

CREATE TABLE finished_per_minute (
    minute     INTEGER NOT NULL,
    operation  TEXT    NOT NULL,
    module     TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    rows       INTEGER NOT NULL,
    PRIMARY KEY (minute, operation, module, state)
) STRICT, WITHOUT ROWID;

-- What the queue holds now (a full scan, once).
INSERT INTO lane_counts (operation, module, wf_trigger, strategy, state, rows)
SELECT operation, module, wf_trigger, strategy,
       CASE WHEN finished_at IS NULL THEN 'live' ELSE state END, count(*)
FROM deletion_requests
GROUP BY operation, module, wf_trigger, strategy, CASE WHEN finished_at IS NULL THEN 'live' ELSE state END;

INSERT INTO finished_per_minute (minute, operation, module, state, rows)
SELECT finished_at / 60000, operation, module, state, count(*)
FROM deletion_requests WHERE finished_at IS NOT NULL
GROUP BY finished_at / 60000, operation, module, state;

INSERT INTO lane_count_mark (id, counted_up_to)
SELECT 1, coalesce(max(id), 0) FROM deletion_requests;

-- A counted row finishes, is requeued, goes from one terminal state to
-- another, or changes lane: move it; finishing counts it in its minute.
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

-- A counted row deleted by hand: uncount it. And since SQLite gives a new
-- row max(id) + 1, a mark above the highest id left would count a new
-- row before it was ever counted: the mark comes down with it.
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

-- `status`'s recent errors: rows waiting to retry after an error, newest
-- first, without a scan (failed ones come from deletion_requests_finished).
CREATE INDEX deletion_requests_retrying
    ON deletion_requests (updated_at)
    WHERE state = 'pending' AND outcome_code IS NOT NULL;
