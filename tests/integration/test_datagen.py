"""The demo rental-shop generator: schema, row counts, determinism, scaling and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.dbcompare import table_fingerprints
from tools.datagen import generate
from tools.localservices import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
SCALED = ("customer", "inventory", "rental")
FIXED = ("country", "city", "category", "actor", "film", "film_actor")

Shop = tuple[str, dict[str, int]]


@pytest.fixture(scope="module")
def new_database(pg_server: PostgresServer) -> Iterator[Callable[[], str]]:
    """Make empty databases on demand; all are dropped when the module is done."""
    names: list[str] = []

    def make() -> str:
        names.append(f"datagen_{uuid.uuid4().hex[:12]}")
        return pg_server.create_database(names[-1])

    yield make
    for name in names:
        pg_server.drop_database(name)


@pytest.fixture(scope="module")
def shop(new_database: Callable[[], str]) -> Shop:
    """One small shop (scale 0.1, seed 42), shared by the tests that only read."""
    url = new_database()
    return url, generate(url, scale=0.1, seed=42)


def scalar(url: str, query: str) -> object:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]


def test_counts_match_the_tables(shop: Shop) -> None:
    url, counts = shop
    assert set(counts) == {*SCALED, *FIXED, "address", "store", "staff", "payment"}
    with psycopg.connect(url) as conn:
        actual = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts}
    assert actual == counts
    assert all(rows > 0 for rows in counts.values())


@pytest.mark.parametrize(("feature", "query"), [
    ("enums", "SELECT count(*) = 2 FROM pg_type WHERE typtype = 'e'"),
    ("domains", "SELECT count(*) = 2 FROM pg_type WHERE typtype = 'd'"
                " AND typnamespace = 'public'::regnamespace"),
    ("monthly partitions + default", "SELECT count(*) = 25 FROM pg_inherits"
                                     " WHERE inhparent = 'payment'::regclass"),
    ("view", "SELECT count(*) = (SELECT count(*) FROM customer) FROM customer_directory"),
    ("foreign keys", "SELECT count(*) = 19 FROM pg_constraint WHERE contype = 'f'"
                     " AND conparentid = 0"),
    ("last_update triggers", "SELECT count(*) = 12 FROM pg_trigger WHERE NOT tgisinternal"),
    ("analyzed", "SELECT bool_and(reltuples >= 0) FROM pg_class WHERE relkind = 'r'"
                 " AND relnamespace = 'public'::regnamespace"),
    ("non-ASCII value", "SELECT count(*) = 1 FROM city WHERE name = 'São Paulo'"),
    ("text[] array", "SELECT bool_or(cardinality(special_features) > 1) FROM film"),
    ("jsonb", "SELECT bool_or(attributes->'audio' ? 'pt-BR') FROM film"),
    ("bytea", "SELECT bool_and(substr(cover, 1, 4) = '\\x89504e47'::bytea) FROM film"),
    ("newline, tab, backslash", "SELECT bool_or(strpos(description, chr(10) || 'Tagline:'"
                                " || chr(9)) > 0 AND strpos(description, chr(92)) > 0) FROM film"),
    ("generated tsvector", "SELECT count(*) > 0 FROM film"
                           " WHERE fulltext @@ to_tsquery('english', 'detectives')"),
    ("money adds up", "SELECT sum(amount) = (SELECT sum(revenue) FROM monthly_category_revenue)"
                      " FROM payment"),
])
def test_schema_carries_the_feature(shop: Shop, feature: str, query: str) -> None:
    assert scalar(shop[0], query) is True, feature


def test_materialized_view_is_populated(shop: Shop) -> None:
    url, _ = shop
    assert scalar(url, "SELECT relispopulated FROM pg_class"
                       " WHERE relname = 'monthly_category_revenue'") is True
    assert scalar(url, "SELECT count(*) FROM monthly_category_revenue") > 0


def test_sequences_continue_after_the_loaded_ids(shop: Shop) -> None:
    url, counts = shop
    with psycopg.connect(url) as conn:
        category_id = conn.execute(
            "INSERT INTO category (name) VALUES ('Test') RETURNING category_id").fetchone()[0]
        payment_id = conn.execute(
            "INSERT INTO payment (customer_id, staff_id, rental_id, amount, method, payment_date)"
            " VALUES (1, 1, 1, 1.00, 'cash', '2025-06-01Z') RETURNING payment_id").fetchone()[0]
        conn.rollback()
    assert (category_id, payment_id) == (counts["category"] + 1, counts["payment"] + 1)


def test_update_trigger_sets_last_update(shop: Shop) -> None:
    with psycopg.connect(shop[0]) as conn:
        touched = conn.execute(
            "UPDATE customer SET active = NOT active WHERE customer_id = 1"
            " RETURNING last_update = now()").fetchone()[0]
        conn.rollback()
    assert touched is True


def test_same_seed_gives_identical_tables_across_processes(
    shop: Shop, new_database: Callable[[], str]
) -> None:
    url = new_database()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-m", "tools.datagen", "--url", url, "--scale", "0.1", "--seed", "42"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )
    assert f"{sum(shop[1].values()):,} rows" in done.stdout
    assert table_fingerprints(url) == table_fingerprints(shop[0])


def test_another_seed_gives_other_rows(shop: Shop, new_database: Callable[[], str]) -> None:
    url = new_database()
    counts = generate(url, scale=0.1, seed=7)
    ours, theirs = table_fingerprints(shop[0]), table_fingerprints(url)
    for table in ("country", "city", "category"):
        assert ours[f"public.{table}"] == theirs[f"public.{table}"], table
    for table in (*SCALED, "film", "payment_2024_06"):
        assert ours[f"public.{table}"] != theirs[f"public.{table}"], table
    assert {t: counts[t] for t in SCALED} == {t: shop[1][t] for t in SCALED}


def test_rows_scale_linearly(shop: Shop, new_database: Callable[[], str]) -> None:
    small = shop[1]
    large = generate(new_database(), scale=0.5, seed=42)
    for table in SCALED:
        assert large[table] == 5 * small[table], table
    assert large["payment"] == pytest.approx(5 * small["payment"], rel=0.05)
    for table in FIXED:
        assert large[table] == small[table], table


def test_refuses_a_database_that_is_not_empty(shop: Shop) -> None:
    with pytest.raises(psycopg.errors.DuplicateObject):
        generate(shop[0], scale=0.1)
    assert scalar(shop[0], "SELECT count(*) FROM customer") == shop[1]["customer"]


def test_rejects_a_non_positive_scale() -> None:
    with pytest.raises(ValueError, match="scale must be positive"):
        generate("postgresql://unused", scale=0)
