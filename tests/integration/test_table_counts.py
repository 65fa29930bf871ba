"""Tables counted as a person counts them, everywhere: Pagila's partitioned payment table is
one table with its partitions counted apart, in the API and in the dry-run panel."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.backups import backed_up
from tests.support.web import BearerClient

COUNT_SQL = """
SELECT count(*) FILTER (WHERE NOT c.relispartition),
       count(*) FILTER (WHERE c.relispartition AND c.relkind = 'r')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
"""


@pytest.fixture
def api(app, api_token):
    """A client of its own with the bearer token (the htmx client logs in on another)."""
    return BearerClient(app.test_client(), api_token)


def test_partitions_count_under_their_table_in_the_api_and_the_dry_run(
        pagila, api, htmx, run_worker):
    with psycopg.connect(pagila) as conn:
        tables, partitions = conn.execute(COUNT_SQL).fetchone()
    expected = f"{tables} tables ({partitions} partitions)"
    backup = backed_up(api, run_worker)

    roots = {f"{t['schema']}.{t['name']}": t["partitionOf"] for t in backup["tables"]}
    assert roots["public.payment_p2022_01"] == "public.payment"
    assert roots["public.actor"] is None
    assert len(roots) == tables - 1 + partitions  # payment itself holds no rows

    panel = htmx.request("GET", f"/system/backup/{backup['id']}/restore").get_data(as_text=True)
    assert f"<dt>Tables</dt><dd>{expected}</dd>" in panel
    assert f"<dt>Tables now</dt><dd>{expected}</dd>" in panel
    assert f"<li><b>{expected}</b> replaced</li>" in panel
    assert f"{expected} keep their row count" in panel
