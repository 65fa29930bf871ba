import io

import pytest

from pgbackup import BackupError, pg_dump_version
from pgbackup.pgdump import StderrCollector


def collect(text: str) -> StderrCollector:
    collector = StderrCollector(io.BytesIO(text.encode()), max_lines=5)
    collector.join()
    return collector


def test_tracks_the_table_being_dumped() -> None:
    collector = collect(
        'pg_dump: reading extensions\n'
        'pg_dump: dumping contents of table "public.actor"\n'
        'pg_dump: dumping contents of table "public.film"\n'
    )
    assert collector.current_table == "public.film"
    assert collector.tables_started == 2


def test_failure_text_shows_problems_not_chatter() -> None:
    collector = collect(
        "pg_dump: reading extensions\n"
        "pg_dump: error: query failed: ERROR:  permission denied for table x\n"
        "pg_dump: detail: Query was: LOCK TABLE x\n"
        "boom from a wrapper\n"
    )
    assert collector.failure_text() == (
        "pg_dump: error: query failed: ERROR:  permission denied for table x\n"
        "pg_dump: detail: Query was: LOCK TABLE x\n"
        "boom from a wrapper"
    )


def test_failure_text_falls_back_to_the_bounded_tail() -> None:
    collector = collect("".join(f"pg_dump: step {i}\n" for i in range(10)))
    assert list(collector.lines) == [f"pg_dump: step {i}" for i in range(5, 10)]
    assert collector.failure_text().endswith("pg_dump: step 9")


def test_version_is_the_short_form() -> None:
    version = pg_dump_version()
    assert version.split(".")[0].isdigit() and " " not in version


def test_missing_binary() -> None:
    with pytest.raises(BackupError, match="pg_dump not found"):
        pg_dump_version("/nonexistent/pg_dump")


@pytest.mark.parametrize("binary", ["/bin/false", "/bin/true"])
def test_not_a_pg_dump(binary: str) -> None:
    with pytest.raises(BackupError, match="is it pg_dump"):
        pg_dump_version(binary)
