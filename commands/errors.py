"""How the commands report a refusal: one line and a non-zero exit, no traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from services.errors import CatalogError


def fail_on_catalog_error(func: Callable[..., Any]) -> Callable[..., Any]:
    """Show CatalogError (AccountError included) as a one-line CLI error."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CatalogError as exc:
            raise click.ClickException(exc.message) from None

    return wrapper
