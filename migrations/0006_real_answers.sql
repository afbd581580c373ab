-- Answers real Zoho can give (issue 12).

-- Status polls in a row that said nothing about the job (404, 204, an
-- unreadable body). At `mass_delete.max_unknown_polls` the job becomes
-- `uncertain`; a readable status resets it.
ALTER TABLE mass_delete_jobs ADD COLUMN unknown_polls INTEGER NOT NULL DEFAULT 0
    CONSTRAINT unknown_polls_not_negative CHECK (unknown_polls >= 0);

-- The API credits zdel spent, per minute (`minute` = epoch ms / 60000): the
-- rolling 24-hour sum is what `limits.max_credits_per_day` caps. Minutes
-- older than two days are pruned as new ones are written.
CREATE TABLE credit_ledger (
    minute   INTEGER PRIMARY KEY,
    credits  INTEGER NOT NULL CONSTRAINT credits_not_negative CHECK (credits >= 0)
) STRICT;

-- The last X-API-CREDITS-REMAINING Zoho sent (it sends it once half the
-- day's credits are used), with when it came.
CREATE TABLE credits_seen (
    org        TEXT    PRIMARY KEY,
    remaining  INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
) STRICT;
