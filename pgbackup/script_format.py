"""The layout of an incremental's artifact: a psql script of the changes, in sections.

::

    -- pgbackup incremental <id> after <parent id>: changes from <start lsn> to <end lsn>
    SET …;                                  (pgbackup.replay_sql.REPLAY_SETTINGS_SQL)
    -- pgbackup xact <xid> committed <time> lsn <lsn>
    BEGIN;
    …one statement per line…
    COMMIT;
    …one such block per source transaction, in commit order…
    -- pgbackup tables copied whole
    BEGIN;
    TRUNCATE ONLY "s"."t";
    COPY "s"."t" ("a", "b") FROM stdin;
    …rows in COPY's text format…
    \\.
    COMMIT;
    -- pgbackup sequences
    SELECT pg_catalog.setval('"s"."seq"', 42, true);
    -- pgbackup end

Stock ``psql`` replays it whole. A point-in-time replay (pgbackup.chain_restore) reads it
line by line: it stops taking transactions at the first one committed after its moment,
leaves out the tables copied whole then (they hold the state at the end of the script,
not at the moment), and still sets the sequences (a sequence ahead of its table is
harmless, one behind it is not). ``-- pgbackup end`` proves the script is whole.
"""

from __future__ import annotations

TABLES_MARKER = "-- pgbackup tables copied whole\n"
SEQUENCES_MARKER = "-- pgbackup sequences\n"
END_MARKER = "-- pgbackup end\n"


def header(backup_id: str, parent_id: str, start_lsn: str, end_lsn: str) -> str:
    return (f"-- pgbackup incremental {backup_id} after {parent_id}: changes from "
            f"{start_lsn} to {end_lsn}\n")
