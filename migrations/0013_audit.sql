-- An audit that stays: each selection keeps how it was queued (`cli`: zdel
-- enqueue or select; `erase`: zdel erase) beside who (os_user, host) and a
-- hash of the effective configuration it ran with. A request queued by a
-- plain INSERT belongs to no selection and reads as queued by `sql`.
ALTER TABLE selections ADD COLUMN how TEXT NOT NULL DEFAULT 'cli';
ALTER TABLE selections ADD COLUMN config_hash TEXT;
