from tests.support.dbcompare import table_fingerprints


def test_pagila_loads_with_its_rows(pagila):
    tables = table_fingerprints(pagila)
    assert tables["public.actor"][0] == 200
    assert sum(count for count, _ in tables.values()) > 40000
