"""Chains of a full and its incrementals: continuity, reach, and what a moment needs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pgbackup.chains import ChainError, Link, check_chain, links_for, lsn_value, reachable

T0 = datetime(2024, 1, 15, 2, 0, tzinfo=UTC)


def chain(*ends: tuple[str, int]) -> list[Link]:
    """A full ending at LSN ends[0] and incrementals ending at the others; the second item
    of each is when it ends, in minutes after T0: it covers until then and is consistent a
    second later (the time its boundary slot took to create)."""
    links, previous = [], None
    for n, (lsn, minutes) in enumerate(ends):
        end = T0 + timedelta(minutes=minutes)
        links.append(Link(f"b{n}", "full" if n == 0 else "incremental",
                          previous.backup_id if previous else None,
                          previous.end_lsn if previous else lsn, lsn,
                          end + timedelta(seconds=1), end))
        previous = links[-1]
    return links


def test_lsns_compare_as_numbers() -> None:
    assert lsn_value("0/FF") < lsn_value("1/0") < lsn_value("1/10")
    assert lsn_value("16/B374D848") == (0x16 << 32) | 0xB374D848
    with pytest.raises(ChainError, match="is not an LSN"):
        lsn_value("zz")


def test_a_sound_chain_reaches_from_its_full_to_its_last_incremental() -> None:
    links = chain(("0/100", 0), ("0/200", 60), ("0/300", 120))
    check_chain(links)
    assert reachable(links) == (T0 + timedelta(seconds=1), T0 + timedelta(minutes=120))


@pytest.mark.parametrize(("change", "message"), [
    (lambda links: links[1:], "starts with a full backup"),
    (lambda links: [links[0], links[2]], "does not follow b0"),
    (lambda links: [links[0], replace(links[1], start_lsn="0/150")],
     "starts at LSN 0/150, but b0 ends at 0/100"),
])
def test_a_broken_chain_is_refused_with_a_reason(change, message: str) -> None:
    with pytest.raises(ChainError, match=message):
        check_chain(change(chain(("0/100", 0), ("0/200", 60), ("0/300", 120))))


@pytest.mark.parametrize(("minutes", "needed"), [
    (1 / 60, ["b0", "b1"]),  # the full is consistent then, but covers only until T0
    (30, ["b0", "b1"]),  # inside the first incremental: replayed up to the moment
    (60, ["b0", "b1"]),  # exactly where it ends
    (61, ["b0", "b1", "b2"]),
    (120, ["b0", "b1", "b2"]),
])
def test_a_moment_needs_the_links_up_to_the_first_that_ends_after_it(
        minutes: int, needed: list[str]) -> None:
    links = chain(("0/100", 0), ("0/200", 60), ("0/300", 120))
    assert [link.backup_id for link in links_for(links, T0 + timedelta(minutes=minutes))] \
        == needed


def test_a_moment_outside_the_reach_is_refused() -> None:
    links = chain(("0/100", 0), ("0/200", 60))
    with pytest.raises(ChainError, match="outside the chain's reach, from 2024-01-15T02:00:01"):
        links_for(links, T0 + timedelta(minutes=61))
    with pytest.raises(ChainError, match="outside"):
        links_for(links, T0)  # before the full's snapshot was consistent
