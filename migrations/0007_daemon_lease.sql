-- One working zdel (serve or drain) per database (issue 13). The row is the
-- lease: its holder renews `expires_at`; anyone may take it once it has
-- expired, or at once when the holder is on this host and its OS lock on
-- `<database>.lock` is free (the kernel frees it when the process dies).
-- `token` grows with every new holder; claims check it, so a frozen
-- holder's late claims are refused.
CREATE TABLE daemon_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    token       INTEGER NOT NULL,
    owner       TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    command     TEXT    NOT NULL,
    since       INTEGER NOT NULL,
    renewed_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
