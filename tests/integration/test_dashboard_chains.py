"""The chains panel, driven as htmx drives it (issue #14): each chain with its links and
reachable window, the app's replication slots, the point-in-time form (its dry run in the
restore panel, a moment outside every window refused next to the form, a restore to the
moment into a new database) and who sees what."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.extensions import db
from services.models import Restore
from tests.support.backups import backed_up
from tests.support.capture import write
from tests.support.dbcompare import table_fingerprints
from tools.localservices import PostgresServer, free_port

PANEL = "/system/backup/chains"


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


def words(response) -> str:
    """What a reader sees: the text without its tags."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(
        as_text=True))))


@pytest.fixture(autouse=True)
def capture_on(capture: str) -> None:
    """Change capture on (see the ``capture`` fixture), and a table for the marker rows
    (made before the full: later, it would be a schema change)."""
    write(capture, "CREATE TABLE dash_marks (id serial PRIMARY KEY, label text NOT NULL)")


@pytest.fixture
def api(app, api_token):
    """A client of its own for the API, beside the dashboard's logged-in session."""
    client, headers = app.test_client(), {"Authorization": f"Bearer {api_token}"}

    class Api:
        def get(self, path: str, **kwargs):
            return client.get(path, headers=headers, **kwargs)

        def post(self, path: str, **kwargs):
            return client.post(path, headers=headers, **kwargs)

    return Api()


@pytest.fixture
def new_database(pg_server: PostgresServer) -> Iterator[str]:
    name = f"dashchain_{secrets.token_hex(3)}"
    yield name
    pg_server.drop_database(name)


def marker(url: str, label: str) -> datetime:
    """Commit a marker row; the moment just after its commit (UTC)."""
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SET synchronous_commit = on")
        pg.execute("INSERT INTO dash_marks (label) VALUES (%s)", [label])
        at: datetime = pg.execute("SELECT clock_timestamp()").fetchone()[0]
    return at.astimezone(UTC)


def as_typed(moment: datetime) -> str:
    """The browser's datetime-local value for ``moment``: no zone, whole milliseconds
    (rounded up: the moment stays after the commit it follows)."""
    ceiling = moment + timedelta(microseconds=-moment.microsecond % 1000)
    return ceiling.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def labels(url: str) -> list[str]:
    with psycopg.connect(url) as pg:
        return [row[0] for row in pg.execute("SELECT label FROM dash_marks ORDER BY id")]


def test_a_chain_is_shown_dry_run_and_restored_to_a_moment(
        app, htmx, api, run_worker, pagila, pg_server, new_database):
    full = backed_up(api, run_worker)
    write(pagila, "UPDATE rental SET return_date = now() WHERE rental_id <= 20")
    at_a = marker(pagila, "a")
    state_a = table_fingerprints(pagila)
    write(pagila, "DELETE FROM payment WHERE payment_id IN (SELECT payment_id FROM payment "
          "ORDER BY payment_id LIMIT 5)")
    marker(pagila, "b")
    incremental = backed_up(api, run_worker, type="incremental")
    assert incremental["parentId"] == full["id"]

    # The panel: the chain, its links with their change counts, the window, the slot.
    page = htmx.request("GET", "/system/backup")
    assert 'id="chains"' in page.get_data(as_text=True)
    response = htmx.request("GET", PANEL)
    assert response.status_code == 200
    panel = text(response)
    chain = re.search(rf'<li class="chain" id="chain-{full["id"]}">.*?</ol>', panel).group(0)
    assert incremental["id"] in chain and "1 backup" not in chain
    assert re.search(r"\d+ changes in 4 transactions", chain)  # recorded in the catalog
    earliest = full["capture"]["consistentAt"]
    latest = incremental["capture"]["coversUntil"]
    assert latest[:23].replace("T", " ") in chain  # the window's end
    assert f'max="{latest[:23]}"' in panel and f'value="{latest[:23]}"' in panel
    assert 'min="' + earliest[:19] in panel
    assert "The time is UTC" in panel
    slot = re.search(r'<li class="slot slot-live".*?</li>', panel).group(0)
    assert incremental["capture"]["slot"] in slot and "of WAL" in slot

    # The dry run of a moment inside the incremental: the restore panel with the chain.
    dry = htmx.request("GET", f"{PANEL}/dry-run", query_string={"point_in_time": as_typed(at_a)})
    assert dry.status_code == 200, dry.get_data(as_text=True)[:500]
    analysis = words(dry)
    assert "Restore to" in analysis and "The restore can go ahead" in analysis
    assert f"{full['id']} restored first" in analysis
    assert f"{incremental['id']} replayed up to the moment" in analysis
    assert f"reachable: {earliest[:4]}" in analysis and latest[:23].replace("T", " ") in analysis
    forms = text(dry)
    assert f'hx-post="/system/backup/{incremental["id"]}/restore"' in forms
    assert forms.count('name="point_in_time"') == 3  # new database, over it, rehearsal

    # Restored to that moment into a new database, from the panel's form.
    started = htmx.request("POST", f"/system/backup/{incremental['id']}/restore", data={
        "mode": "new-database", "target_database": new_database,
        "point_in_time": at_a.isoformat()})
    assert started.status_code == 200, started.get_data(as_text=True)[:500]
    assert "as it was at" in text(started)
    run_worker()
    with app.app_context():
        [restore] = db.session.query(Restore).all()
        assert restore.status == "completed", restore.error
        assert restore.point_in_time is not None and restore.backup_id == incremental["id"]
    restored = pg_server.url(new_database)
    assert labels(restored) == ["a"]
    assert table_fingerprints(restored) == state_a


def test_a_moment_outside_the_window_is_refused_next_to_the_form(htmx, api, run_worker):
    full = backed_up(api, run_worker)
    for moment, status, words in (
            ("2000-01-01T00:00", 409, f"reachable: {full['capture']['consistentAt'][:16]}"),
            ("yesterday", 400, "'yesterday' is not a moment"),
            ("", 400, "Give the moment to restore to (UTC).")):
        refused = htmx.request("GET", f"{PANEL}/dry-run", query_string={"point_in_time": moment})
        assert refused.status_code == status, moment
        assert refused.headers["HX-Retarget"] == "#restore-error-point-in-time"
        assert words in text(refused), text(refused)


def test_the_slots_line_says_why_when_the_database_cannot_be_reached(app, htmx):
    app.config["DATABASE_URL"] = f"postgresql://backup:s3cret-pw@127.0.0.1:{free_port()}/shop"
    response = htmx.request("GET", PANEL)
    assert response.status_code == 200
    panel = text(response)
    assert "The slots could not be read:" in panel and "s3cret-pw" not in panel
    assert "No chain yet" in panel


def test_viewers_see_the_chains_and_operators_the_form(app, api, run_worker):
    from tests.support.web import HtmxClient

    backed_up(api, run_worker)
    runner = app.test_cli_runner()
    for role in ("viewer", "operator"):
        result = runner.invoke(args=["users", "create", "--username", role, "--role", role,
                                     "--password-stdin"], input="a long password\n")
        assert result.exit_code == 0, result.output
    viewer = HtmxClient(app.test_client(), "viewer", "a long password")
    operator = HtmxClient(app.test_client(), "operator", "a long password")
    for client in (viewer, operator):
        assert "Reachable:" in text(client.request("GET", PANEL))
    assert 'class="pit-form"' not in text(viewer.request("GET", PANEL))
    assert 'class="pit-form"' in text(operator.request("GET", PANEL))
    assert viewer.request("GET", f"{PANEL}/dry-run").status_code == 403
