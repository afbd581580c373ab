-- The org's modules as `GET /settings/modules` named them (api_name, Zoho's
-- spelling), cached so that `zdel enqueue` and `zdel select` can check a
-- --module and write it as Zoho spells it without asking Zoho every time.
-- Replaced whole when fetched again (after a day, or for a name not in it).
CREATE TABLE org_modules (
    org         TEXT    NOT NULL,
    api_name    TEXT    NOT NULL,
    fetched_at  INTEGER NOT NULL,
    PRIMARY KEY (org, api_name)
) STRICT;
