-- Cheaper state changes (measured: the single SQLite writer is the
-- throughput bottleneck, and most of its time went to index upkeep).
-- The lane and parent indexes only ever serve pending rows, and the lease
-- index only running ones: as partial indexes, a row leaves the lane index
-- once when claimed, and recording its outcome no longer touches it at all.
-- Lease fencing looks rows up by primary key, so the lease token needs no
-- index; the reaper finds running rows by lease expiry instead.

DROP INDEX deletion_requests_lane;
CREATE INDEX deletion_requests_pending_lane
    ON deletion_requests (operation, module, wf_trigger, strategy, next_attempt_at)
    WHERE state = 'pending';

DROP INDEX deletion_requests_parent;
CREATE INDEX deletion_requests_pending_parent
    ON deletion_requests (operation, module, record_id, related_list, next_attempt_at)
    WHERE state = 'pending' AND operation = 'delink';

DROP INDEX deletion_requests_lease;
CREATE INDEX deletion_requests_running
    ON deletion_requests (lease_expires_at)
    WHERE state = 'running';
