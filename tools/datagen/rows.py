"""Row generators: one deterministic stream of tuples per table.

Each table draws from its own ``random.Random`` seeded with ``"<seed>/<table>"`` and every
timestamp derives from fixed dates, so a seed and a scale always give the same rows. Rows
that depend on other tables (a rental's staff, a payment's amount) come from pure
functions of ids or from regenerating the small fixed tables, never from remembering
earlier rows: memory stays constant whatever the scale.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tools.datagen.vocabulary import (
    CATEGORIES,
    FEATURES,
    FIRST_NAMES,
    LANGUAGES,
    LAST_NAMES,
    PLACES,
    RATINGS,
    STORE_BRANDS,
    STORY_FORMS,
    STORY_GOALS,
    STORY_PLACES,
    STORY_ROLES,
    STREET_KINDS,
    STREETS,
    TITLE_ADJECTIVES,
    TITLE_NOUNS,
)

START = datetime(2024, 1, 1, tzinfo=UTC)  # the first rental
END = datetime(2026, 1, 1, tzinfo=UTC)  # every rental, return and payment is before this
LOADED_AT = END  # last_update of every row
PERIOD = int((END - START).total_seconds())

N_CITIES = sum(len(cities) for cities in PLACES.values())
N_ACTORS = 200
N_FILMS = 1000
STAFF_PER_STORE = 3
RENTAL_RATES = (Decimal("0.99"), Decimal("2.99"), Decimal("4.99"))
LATE_FEE = Decimal("1.00")  # per day beyond the film's rental duration
METHODS = ("cash", "card", "voucher")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MASK64 = (1 << 64) - 1
UNDECOMPOSABLE = str.maketrans("øØłŁ", "oOlL")  # letters NFKD leaves alone

Row = tuple[object, ...]


@dataclass(frozen=True)
class Plan:
    """Row counts of the scaled tables, and the seed that fills every table."""

    seed: int
    stores: int
    customers: int
    inventory: int
    rentals: int

    @classmethod
    def build(cls, scale: float, seed: int) -> Plan:
        """Counts for ``scale``: 1.0 is about 35,000 rows in all."""
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        return cls(
            seed=seed,
            stores=max(2, round(2 * scale)),
            customers=max(1, round(2_000 * scale)),
            inventory=max(1, round(4_500 * scale)),
            rentals=max(1, round(10_000 * scale)),
        )

    @property
    def staff(self) -> int:
        return self.stores * STAFF_PER_STORE

    @property
    def addresses(self) -> int:
        """Stores, then staff, then customers each own one address, in id order."""
        return self.stores + self.staff + self.customers

    def rng(self, table: str) -> random.Random:
        """The random stream of one table (a str seed is hashed stably by sha512)."""
        return random.Random(f"{self.seed}/{table}")


RowsFn = Callable[[Plan], Iterator[Row]]


@dataclass(frozen=True)
class Table:
    """A table to load: its COPY column list and the generator of its rows."""

    name: str
    columns: tuple[str, ...]
    rows: RowsFn


TABLES: list[Table] = []


def table(name: str, *columns: str) -> Callable[[RowsFn], RowsFn]:
    """Register a row generator; tables load in registration order."""

    def register(rows: RowsFn) -> RowsFn:
        TABLES.append(Table(name, columns, rows))
        return rows

    return register


# --- pure helpers ---------------------------------------------------------------------


def mix(value: int) -> int:
    """A fixed 64-bit integer hash (the splitmix64 finalizer)."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK64
    return value ^ (value >> 31)


def stock(plan: Plan, inventory_id: int) -> tuple[int, int]:
    """Film and store of an inventory item, derived from its id so rentals need no lookup."""
    digest = mix((plan.seed << 32) ^ inventory_id)
    return digest % N_FILMS + 1, (digest >> 32) % plan.stores + 1


def first_staff(store_id: int) -> int:
    """Staff ids run store by store; the first of each store manages it."""
    return (store_id - 1) * STAFF_PER_STORE + 1


def email(first: str, last: str, number: int, domain: str) -> str:
    return f"{ascii_slug(first)}.{ascii_slug(last)}{number}@{domain}"


def ascii_slug(name: str) -> str:
    """'Núñez' -> 'nunez', "O'Brien" -> 'obrien', 'Søren' -> 'soren'."""
    decomposed = unicodedata.normalize("NFKD", name.translate(UNDECOMPOSABLE))
    plain = decomposed.encode("ascii", "ignore").decode()
    return "".join(char for char in plain.lower() if char.isalnum())


def picture(rng: random.Random, low: int, high: int) -> bytes:
    """A small fake PNG: magic bytes, then random ones (NULs and all)."""
    return PNG_MAGIC + rng.randbytes(rng.randrange(low, high))


# --- fixed tables ---------------------------------------------------------------------


@table("country", "country_id", "name", "last_update")
def countries(plan: Plan) -> Iterator[Row]:
    for country_id, name in enumerate(PLACES, 1):
        yield country_id, name, LOADED_AT


@table("city", "city_id", "name", "country_id", "last_update")
def cities(plan: Plan) -> Iterator[Row]:
    names = ((name, country_id)
             for country_id, names in enumerate(PLACES.values(), 1) for name in names)
    for city_id, (name, country_id) in enumerate(names, 1):
        yield city_id, name, country_id, LOADED_AT


@table("category", "category_id", "name", "last_update")
def categories(plan: Plan) -> Iterator[Row]:
    for category_id, name in enumerate(CATEGORIES, 1):
        yield category_id, name, LOADED_AT


@table("actor", "actor_id", "first_name", "last_name", "last_update")
def actors(plan: Plan) -> Iterator[Row]:
    rng = plan.rng("actor")
    for actor_id in range(1, N_ACTORS + 1):
        yield actor_id, rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), LOADED_AT


@table(
    "film", "film_id", "title", "description", "release_year", "category_id",
    "rental_duration", "rental_rate", "length", "replacement_cost", "rating",
    "special_features", "attributes", "cover", "last_update",
)
def films(plan: Plan) -> Iterator[Row]:
    rng = plan.rng("film")
    titles = rng.sample([f"{adj} {noun}" for adj in TITLE_ADJECTIVES for noun in TITLE_NOUNS],
                        N_FILMS)
    for film_id, title in enumerate(titles, 1):
        yield (
            film_id, title, film_description(rng), rng.randrange(1950, 2024),
            rng.randrange(1, len(CATEGORIES) + 1), rng.randrange(3, 8),
            rng.choice(RENTAL_RATES), rng.randrange(46, 186),
            Decimal(rng.randrange(9, 30)) + Decimal("0.99"), rng.choice(RATINGS),
            film_features(rng), film_attributes(rng), picture(rng, 32, 128), LOADED_AT,
        )


def film_description(rng: random.Random) -> str | None:
    """A one-line plot; a few carry a tab, a newline, quotes and a backslash."""
    if rng.random() < 0.02:
        return None
    plot = (
        f"A {rng.choice(TITLE_ADJECTIVES).lower()} {rng.choice(STORY_FORMS)} of a "
        f"{rng.choice(STORY_ROLES)} and a {rng.choice(STORY_ROLES)} who must "
        f"{rng.choice(STORY_GOALS)} {rng.choice(STORY_PLACES)}"
    )
    if rng.random() < 0.05:
        plot += '\nTagline:\t"Don\'t look back" \\ 100% uncut — sem cortes'
    return plot


def film_features(rng: random.Random) -> list[str] | None:
    """NULL, an empty array or a subset of the DVD extras."""
    if rng.random() < 0.05:
        return None
    return [feature for feature in FEATURES if rng.random() < 0.4]


def film_attributes(rng: random.Random) -> str:
    return json.dumps({
        "audio": rng.sample(LANGUAGES, rng.randrange(1, 3)),
        "subtitles": rng.sample(LANGUAGES, rng.randrange(0, 4)),
        "awards": rng.choices(range(4), weights=(20, 4, 2, 1))[0],
        "director": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        "color": rng.random() < 0.9,
    }, ensure_ascii=False)


def film_terms(plan: Plan) -> dict[int, tuple[int, Decimal]]:
    """Rental duration (days) and rate of every film, by id (regenerated, 1,000 entries)."""
    # film_id, ..., rental_duration, rental_rate: see the column list of "film".
    return {row[0]: (row[5], row[6]) for row in films(plan)}


@table("film_actor", "actor_id", "film_id", "last_update")
def film_actors(plan: Plan) -> Iterator[Row]:
    rng = plan.rng("film_actor")
    for film_id in range(1, N_FILMS + 1):
        for actor_id in sorted(rng.sample(range(1, N_ACTORS + 1), rng.randrange(2, 11))):
            yield actor_id, film_id, LOADED_AT


# --- scaled tables --------------------------------------------------------------------


@table("address", "address_id", "line1", "line2", "city_id", "postal_code", "phone",
       "last_update")
def addresses(plan: Plan) -> Iterator[Row]:
    rng = plan.rng("address")
    for address_id in range(1, plan.addresses + 1):
        line1 = f"{rng.randrange(1, 2000)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
        line2 = f"Apt {rng.randrange(1, 300)}" if rng.random() < 0.2 else None
        postal_code = f"{rng.randrange(100_000):05d}"
        phone = f"+{rng.randrange(1, 99)} {rng.randrange(10**9):09d}"
        yield (address_id, line1, line2, rng.randrange(1, N_CITIES + 1), postal_code, phone,
               LOADED_AT)


@table("store", "store_id", "name", "manager_staff_id", "address_id", "opened_on",
       "last_update")
def stores(plan: Plan) -> Iterator[Row]:
    rng = plan.rng("store")
    for store_id in range(1, plan.stores + 1):
        opened = date(2005, 1, 1) + timedelta(days=rng.randrange(18 * 365))
        yield (store_id, f"{rng.choice(STORE_BRANDS)} #{store_id}", first_staff(store_id),
               store_id, opened, LOADED_AT)


@table("staff", "staff_id", "store_id", "first_name", "last_name", "address_id", "email",
       "username", "active", "avatar", "last_update")
def staff(plan: Plan) -> Iterator[Row]:
    rng = plan.rng("staff")
    for staff_id in range(1, plan.staff + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        avatar = picture(rng, 16, 96) if rng.random() < 0.75 else None
        yield (staff_id, (staff_id - 1) // STAFF_PER_STORE + 1, first, last,
               plan.stores + staff_id, email(first, last, staff_id, "staff.example.com"),
               f"{ascii_slug(first)[0]}{ascii_slug(last)}{staff_id}", rng.random() < 0.9,
               avatar, LOADED_AT)


@table("customer", "customer_id", "store_id", "first_name", "last_name", "email",
       "address_id", "active", "created_at", "preferences", "last_update")
def customers(plan: Plan) -> Iterator[Row]:
    rng = plan.rng("customer")
    for customer_id in range(1, plan.customers + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        created = START - timedelta(seconds=rng.randrange(3 * 365 * 86_400))
        yield (customer_id, rng.randrange(1, plan.stores + 1), first, last,
               email(first, last, customer_id, "example.com"),
               plan.stores + plan.staff + customer_id, rng.random() > 0.03, created,
               customer_preferences(rng), LOADED_AT)


def customer_preferences(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    return json.dumps({
        "newsletter": rng.random() < 0.4,
        "language": rng.choice(LANGUAGES),
        "favourite_categories": rng.sample(CATEGORIES, rng.randrange(4)),
    })


@table("inventory", "inventory_id", "film_id", "store_id", "acquired_on", "last_update")
def inventory(plan: Plan) -> Iterator[Row]:
    rng = plan.rng("inventory")
    for inventory_id in range(1, plan.inventory + 1):
        film_id, store_id = stock(plan, inventory_id)
        acquired = START.date() - timedelta(days=rng.randrange(5 * 365))
        yield inventory_id, film_id, store_id, acquired, LOADED_AT


@table("rental", "rental_id", "rental_date", "inventory_id", "customer_id", "return_date",
       "staff_id", "last_update")
def rentals(plan: Plan) -> Iterator[Row]:
    """Rentals spread evenly over [START, END); about 1% never come back."""
    rng = plan.rng("rental")
    slot = max(1, PERIOD // plan.rentals)
    for rental_id in range(1, plan.rentals + 1):
        rented = START + timedelta(
            seconds=(rental_id - 1) * PERIOD // plan.rentals + rng.randrange(slot))
        inventory_id = rng.randrange(1, plan.inventory + 1)
        returned = rented + timedelta(hours=rng.randrange(2, 24 * 10))
        if returned >= END or rng.random() < 0.01:
            returned = None
        _, store_id = stock(plan, inventory_id)
        staff_id = first_staff(store_id) + rng.randrange(STAFF_PER_STORE)
        yield (rental_id, rented, inventory_id, rng.randrange(1, plan.customers + 1),
               returned, staff_id, returned or rented)


@table("payment", "payment_id", "customer_id", "staff_id", "rental_id", "amount", "method",
       "payment_date")
def payments(plan: Plan) -> Iterator[Row]:
    """One payment per returned rental: the film's rate plus a fee per day late."""
    rng = plan.rng("payment")
    terms = film_terms(plan)
    returned = (rental for rental in rentals(plan) if rental[4] is not None)  # return_date
    for payment_id, rental in enumerate(returned, 1):
        rental_id, rented, inventory_id, customer_id, returned_at, staff_id, _ = rental
        duration, rate = terms[stock(plan, inventory_id)[0]]
        days = -((rented - returned_at) // timedelta(days=1))
        amount = rate + LATE_FEE * max(0, days - duration)
        method = rng.choices(METHODS, weights=(3, 6, 1))[0]
        yield payment_id, customer_id, staff_id, rental_id, amount, method, returned_at
