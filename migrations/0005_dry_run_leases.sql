-- A claim made by a dry run (`zdel serve --dry-run`) is marked by a column
-- of its own instead of a `dry-run:` prefix on lease_owner: a dry run sends
-- nothing, so when its lease runs out (or it ends) the row goes back to
-- pending without counting an ambiguous attempt. 1 only while the row is
-- `running` under a dry run's lease; every write that clears the lease
-- clears it too.
ALTER TABLE deletion_requests ADD COLUMN lease_dry_run INTEGER NOT NULL DEFAULT 0
    CONSTRAINT lease_dry_run_is_0_or_1 CHECK (lease_dry_run = 0 OR lease_dry_run = 1);

-- Leases taken under the old spelling (a dry run running across the upgrade).
UPDATE deletion_requests SET lease_dry_run = 1
WHERE state = 'running' AND lease_owner LIKE 'dry-run:%';
