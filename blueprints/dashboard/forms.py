"""Schemas for the dashboard's own forms (users, tokens, the account page), as
``schemas.py`` has the JSON API's.

A form posts strings, and a field left out is an empty one. Names, roles and passwords
follow the rules of accounts.py, shared with the CLI, so a refused field reads word for
word as the service would put it. The users panel shows one problem at a time (the first,
in the order of the fields); the account page shows each field's own under it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from services import accounts
from services.accounts import AccountError
from services.errors import CatalogError

F = TypeVar("F", bound="Form")


class Form(BaseModel):
    """Fields missing from the form take their defaults, which are checked like the rest;
    other fields (the CSRF token) are ignored."""

    model_config = ConfigDict(extra="ignore", validate_default=True)


def parse(model: type[F], form: Mapping[str, Any]) -> F:
    """``model`` from the posted ``form`` (a field sent twice counts once), or a 400
    :class:`catalog.CatalogError` saying what is wrong with the first field refused."""
    try:
        return model.model_validate({key: form[key] for key in form})
    except ValidationError as exc:
        first = next(iter(field_errors(exc).values()))
        raise CatalogError(first[0], code="invalid_form") from None


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """Each refused field's messages, in the order of the fields."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        errors.setdefault(field, []).append(
            message if error["type"] == "value_error" else f"{field}: {message}")
    return errors


def _accounts_rule(check: Callable[[str], object]) -> AfterValidator:
    """A check of accounts.py as a field's validator: its refusal, word for word."""

    def validate(value: str) -> str:
        try:
            check(value)
        except AccountError as exc:
            raise ValueError(exc.message) from None
        return value

    return AfterValidator(validate)


Stripped = Annotated[str, StringConstraints(strip_whitespace=True)]
Role = Annotated[str, _accounts_rule(accounts.check_role)]
Password = Annotated[str, _accounts_rule(accounts.check_password)]


# Users and tokens (blueprints/dashboard/users.py)


class NewUserForm(Form):
    username: Annotated[Stripped, _accounts_rule(
        lambda name: accounts.check_name(name, "username"))] = ""
    role: Role = ""
    password: Password = ""


class RoleForm(Form):
    role: Role = ""


class PasswordResetForm(Form):
    password: Password = ""


class DeleteUserForm(Form):
    confirm_username: Stripped = ""


def _whole_days(text: Any) -> Any:
    """The expiry as typed: empty for never, else whole days (accounts checks the range)."""
    if not isinstance(text, str):
        return text  # the default
    text = text.strip()
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise ValueError(f"the expiry must be a whole number of days, or empty for none "
                         f"(got {text!r})")
    return int(text)


class NewTokenForm(Form):
    # The expiry comes first: its problem was always the one reported first.
    expires_in_days: Annotated[int | None, BeforeValidator(_whole_days)] = 90
    name: Annotated[Stripped, _accounts_rule(
        lambda name: accounts.check_name(name, "token name"))] = ""
    role: Annotated[Stripped, _accounts_rule(accounts.check_role)] = "viewer"


# The account page (blueprints/account.py)


def _required(value: str) -> str:
    if not value.strip():
        raise ValueError("This field is required.")
    return value


def _new_password_length(value: str) -> str:
    if not accounts.MIN_PASSWORD <= len(value) <= accounts.MAX_PASSWORD:
        raise ValueError(f"The new password needs {accounts.MIN_PASSWORD} to "
                         f"{accounts.MAX_PASSWORD} characters.")
    return value


Required = Annotated[str, AfterValidator(_required)]


class PasswordChangeForm(Form):
    current_password: Required = ""
    new_password: Annotated[Required, AfterValidator(_new_password_length)] = ""
    confirm_password: Required = ""

    @field_validator("confirm_password")
    @classmethod
    def same_as_the_new_one(cls, value: str, info: ValidationInfo) -> str:
        """Compared when the new password itself is acceptable (else that is the news)."""
        if "new_password" in info.data and value != info.data["new_password"]:
            raise ValueError("The two new passwords differ.")
        return value


class TotpConfirmForm(Form):
    code: Required = ""


class TotpDisableForm(Form):
    password: Required = ""
    code: Required = ""
