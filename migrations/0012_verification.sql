-- zdel verify: what the recycle bin said of each succeeded delete.
-- `verification` is NULL (not checked), 'verified' (in the bin: Zoho's
-- deleted_time and deleted_by kept) or 'not_in_recycle_bin' (checked, not
-- there: deleted for good, purged after 60 days, restored, or never
-- deleted). Updating these columns changes no maintained count.
ALTER TABLE deletion_requests ADD COLUMN verification TEXT
    CONSTRAINT verification_is_known
    CHECK (verification IS NULL OR verification = 'verified' OR verification = 'not_in_recycle_bin');
ALTER TABLE deletion_requests ADD COLUMN verified_at INTEGER;
ALTER TABLE deletion_requests ADD COLUMN deleted_time TEXT;
ALTER TABLE deletion_requests ADD COLUMN deleted_by TEXT;

-- Each verify run: its scope and what it found, for `zdel status`.
CREATE TABLE verifications (
    id           INTEGER PRIMARY KEY,
    scope        TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    checked      INTEGER NOT NULL DEFAULT 0,
    verified     INTEGER NOT NULL DEFAULT 0,
    not_in_bin   INTEGER NOT NULL DEFAULT 0,
    pages        INTEGER NOT NULL DEFAULT 0
) STRICT;
