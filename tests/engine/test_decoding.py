"""The test_decoding line parser: every format test_decoding.c prints, tricky identifiers and
literals, and refusal of anything else. Lines marked "as printed" were copied from a
PostgreSQL 15 server's pg_logical_slot_peek_changes output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pgbackup.decoding import (
    NULL,
    UNCHANGED_TOAST,
    Begin,
    Change,
    Column,
    Commit,
    DecodingError,
    Message,
    Truncate,
    parse_row,
    parse_rows,
)


def change(data: str) -> Change:
    event = parse_row("0/1", 7, data)
    assert isinstance(event, Change)
    return event


def values(columns: list[Column] | None) -> list[object]:
    return [column.value for column in columns or []]


def test_begin_and_commit_carry_xid_lsn_and_commit_time() -> None:
    rows = [("0/1E51A20", "729", "BEGIN 729"),
            ("0/1E51C60", "729", "COMMIT 729 (at 2026-12-07 03:39:17.060143+00)")]
    assert list(parse_rows(rows)) == [
        Begin(729, "0/1E51A20"),
        Commit(729, "0/1E51C60", datetime(2026, 12, 7, 3, 39, 17, 60143, tzinfo=UTC)),
    ]


@pytest.mark.parametrize("printed, expected", [
    ("2024-01-15 10:31:07+00", datetime(2024, 1, 15, 10, 31, 7, tzinfo=UTC)),
    ("2024-01-15 10:31:07.5-08", datetime(2024, 1, 15, 18, 31, 7, 500000, tzinfo=UTC)),
    ("2024-01-15 16:16:07.000001+05:45", datetime(2024, 1, 15, 10, 31, 7, 1, tzinfo=UTC)),
    ("2024-01-15 10:31:07+00:00:30", datetime(2024, 1, 15, 10, 30, 37, tzinfo=UTC)),
])
def test_commit_times_in_any_session_time_zone(printed: str, expected: datetime) -> None:
    commit = parse_row("0/2", 9, f"COMMIT 9 (at {printed})")
    assert isinstance(commit, Commit) and commit.committed_at == expected


@pytest.mark.parametrize("data", [
    "COMMIT 9",  # include-timestamp was off
    "COMMIT 9 (at 15/01/2024 10:31:07 UTC)",  # not ISO DateStyle
    "COMMIT 9 (at infinity)",
    "BEGIN",  # include-xids was off
    "BEGIN 9 extra",
])
def test_begin_and_commit_in_other_shapes_are_refused(data: str) -> None:
    with pytest.raises(DecodingError):
        parse_row("0/2", 9, data)


def test_an_xid_that_differs_from_the_xid_column_is_refused() -> None:
    with pytest.raises(DecodingError, match="does not match"):
        parse_row("0/2", 10, "BEGIN 9")


def test_insert_with_quoted_identifiers_and_every_literal_form_as_printed() -> None:
    event = change(
        "table \"My Schema\".\"Tä:b [x]\": INSERT: \"I d\"[integer]:1 "
        "\"sel\"\"ect\"[text]:'it''s a\\b \"q\"\nnewline' \"select\"[integer]:2 b[bit]:B'101' "
        "vb[bit varying]:B'1' ch[\"char\"]:'x' bp[character]:'ab ' n[numeric]:NaN "
        "f[double precision]:-Infinity r[real]:-0 ts[timestamp with time zone]:'infinity' "
        "arr[text[]]:'{\"a\\\"b\",NULL,\"c,d\",\"NULL\"}' j[jsonb]:'{\"k\": [1, \"x''y\"]}' "
        "m[public.mood]:'sa''d' comp[\"My Schema\".\"We]ird:T\"]:'(1,\"z)\")' "
        "bo[boolean]:true o[oid]:42 i8[bigint]:1"
    )
    assert (event.schema, event.table, event.action) == ("My Schema", "Tä:b [x]", "INSERT")
    assert event.old_key is None and not event.no_tuple_data
    assert [(c.name, c.type_name) for c in event.new or []] == [
        ("I d", "integer"), ('sel"ect', "text"), ("select", "integer"), ("b", "bit"),
        ("vb", "bit varying"), ("ch", '"char"'), ("bp", "character"), ("n", "numeric"),
        ("f", "double precision"), ("r", "real"), ("ts", "timestamp with time zone"),
        ("arr", "text[]"), ("j", "jsonb"), ("m", "public.mood"),
        ("comp", '"My Schema"."We]ird:T"'), ("bo", "boolean"), ("o", "oid"), ("i8", "bigint"),
    ]
    assert values(event.new) == [
        "1", "'it''s a\\b \"q\"\nnewline'", "2", "B'101'", "B'1'", "'x'", "'ab '", "NaN",
        "-Infinity", "-0", "'infinity'", "'{\"a\\\"b\",NULL,\"c,d\",\"NULL\"}'",
        "'{\"k\": [1, \"x''y\"]}'", "'sa''d'", "'(1,\"z)\")'", "true", "42", "1",
    ]


@pytest.mark.parametrize("printed, value", [
    ("null", NULL),
    ("unchanged-toast-datum", UNCHANGED_TOAST),
    ("'null'", "'null'"),
    ("'unchanged-toast-datum'", "'unchanged-toast-datum'"),
    ("''", "''"),
    ("''''", "''''"),
    ("' '", "' '"),
    ("'x'' y[z]:w \"q\" new-tuple: a'", "'x'' y[z]:w \"q\" new-tuple: a'"),
    ("B''", "B''"),
    ("B'0110'", "B'0110'"),
    ("true", "true"),
    ("false", "false"),
    ("-9223372036854775808", "-9223372036854775808"),
    ("1.50", "1.50"),
    ("-1.5e-10", "-1.5e-10"),
    ("1e+100", "1e+100"),
    (".5", ".5"),
    ("NaN", "NaN"),
    ("Infinity", "Infinity"),
    ("-Infinity", "-Infinity"),
    ("-0", "-0"),
])
def test_every_value_form(printed: str, value: object) -> None:
    event = change(f"table public.t: INSERT: a[some type]:{printed} b[integer]:2")
    assert values(event.new) == [value, "2"]
    assert values(change(f"table public.t: INSERT: a[some type]:{printed}").new) == [value]


def test_update_with_old_key_and_new_tuple() -> None:
    event = change(
        "table public.t: UPDATE: old-key: id[integer]:1 \"new-tuple:\"[text]:' new-tuple: ' "
        "new-tuple: id[integer]:2 \"new-tuple:\"[text]:'x' big[text]:unchanged-toast-datum"
    )
    assert [(c.name, c.value) for c in event.old_key or []] == [
        ("id", "1"), ("new-tuple:", "' new-tuple: '"),
    ]
    assert values(event.new) == ["2", "'x'", UNCHANGED_TOAST]


def test_update_without_old_key_and_full_identity_with_only_nulls() -> None:
    plain = change("table public.t: UPDATE: id[integer]:1 v[text]:null")
    assert plain.old_key is None and values(plain.new) == ["1", NULL]
    all_null = change("table public.t: UPDATE: old-key: new-tuple: v[text]:'a'")
    assert all_null.old_key == [] and values(all_null.new) == ["'a'"]


def test_delete_carries_the_old_key_and_no_new_row() -> None:
    event = change("table public.t: DELETE: id[integer]:3")
    assert event.new is None and values(event.old_key) == ["3"] and not event.no_tuple_data


@pytest.mark.parametrize("action", ["INSERT", "UPDATE", "DELETE"])
def test_no_tuple_data(action: str) -> None:
    event = change(f"table public.nopk: {action}: (no-tuple-data)")
    assert event.no_tuple_data and event.new is None and event.old_key is None


def test_insert_of_a_table_without_columns() -> None:
    assert change("table public.empty: INSERT:").new == []


@pytest.mark.parametrize("data, tables, restart, cascade", [
    ("table public.a: TRUNCATE: (no-flags)", [("public", "a")], False, False),
    ("table public.a, public.bb: TRUNCATE: restart_seqs", [("public", "a"), ("public", "bb")],
     True, False),
    ("table public.a: TRUNCATE: cascade", [("public", "a")], False, True),
    ("table public.a: TRUNCATE: restart_seqs cascade", [("public", "a")], True, True),
    ('table "x, y"."a: TRUNCATE: b", "é"."""": TRUNCATE: (no-flags)',
     [("x, y", "a: TRUNCATE: b"), ("é", '"')], False, False),
])
def test_truncate_lists_and_flags(
    data: str, tables: list[tuple[str, str]], restart: bool, cascade: bool
) -> None:
    assert parse_row("0/1", 7, data) == Truncate(tables, restart, cascade)


def test_messages_are_read_by_their_size() -> None:
    assert parse_row("0/1", 7, "message: transactional: 1 prefix: p, sz: 5 content:hello") == (
        Message(True, "p", "hello"))
    tricky = "message: transactional: 0 prefix: a, sz: 1 content:b, sz: 3 content:é!"
    assert parse_row("0/1", 0, tricky) == Message(False, "a, sz: 1 content:b", "é!")


@pytest.mark.parametrize("data, complaint", [
    ("PREPARE TRANSACTION 'x', txid 7", "unknown"),
    ("streaming change for TXN 7", "unknown"),
    ("table public.t: MERGE: id[integer]:1", "expected INSERT:"),
    ("table public.t INSERT: id[integer]:1", "expected ': '"),
    ("table public.T: INSERT: id[integer]:1", "expected an identifier"),
    ("table t: INSERT: id[integer]:1", "expected '.'"),
    ("table public.a, public.b: INSERT: id[integer]:1", "several tables"),
    ('table "public.t: INSERT: id[integer]:1', "unterminated"),
    ("table public.t: INSERT: id[integer]:'open", "unterminated"),
    ("table public.t: INSERT: id[integer]:abc", "unrecognised value"),
    ("table public.t: INSERT: id[integer]:1x", "unrecognised value"),
    ("table public.t: INSERT: id[integer]:NULL", "unrecognised value"),
    ("table public.t: INSERT: id[integer]:'a'b", "after a value"),
    ("table public.t: INSERT: id[bit]:B'12'", "bit string"),
    ("table public.t: INSERT: id:1", "expected '\\['"),
    ("table public.t: INSERT: id[Integer]:1", "type name"),
    ("table public.t: INSERT: id[]:1", "empty type name"),
    ("table public.t: INSERT: id[integer]1", "expected ':'"),
    ("table public.t: INSERT:  id[integer]:1", "identifier"),
    ("table public.t: DELETE: (no-tuple-data) id[integer]:1", "after \\(no-tuple-data\\)"),
    ("table public.t: DELETE: old-key: id[integer]:1", "expected '\\['"),
    ("table public.t: TRUNCATE:", "TRUNCATE flags"),
    ("table public.t: TRUNCATE: cascade restart_seqs", "after TRUNCATE flags"),
    ("message: transactional: 1 prefix: p, sz: 9 content:short", "prefix from its content"),
])
def test_what_cannot_be_parsed_is_refused(data: str, complaint: str) -> None:
    with pytest.raises(DecodingError, match=complaint):
        parse_row("0/1", 7, data)


def test_errors_quote_only_the_neighbourhood_of_the_problem() -> None:
    secret_row = "table public.t: INSERT: a[text]:'" + "s" * 100_000 + "' b[integer]:oops"
    with pytest.raises(DecodingError) as caught:
        parse_row("0/1", 7, secret_row)
    assert "oops" in str(caught.value) and len(str(caught.value)) < 200


def test_rows_are_parsed_lazily() -> None:
    def rows():
        yield ("0/1", 5, "BEGIN 5")
        raise AssertionError("read too far")

    assert next(parse_rows(rows())) == Begin(5, "0/1")


def test_commit_time_keeps_its_offset() -> None:
    commit = parse_row("0/2", 9, "COMMIT 9 (at 2024-01-15 16:16:07+05:45)")
    assert isinstance(commit, Commit)
    assert commit.committed_at.utcoffset() == timedelta(hours=5, minutes=45)
    assert commit.committed_at.tzinfo == timezone(timedelta(hours=5, minutes=45))
