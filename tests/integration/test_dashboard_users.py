"""Users and API tokens in the dashboard, driven as htmx drives it: admins only, CSRF on
every change, refusals inline with a 4xx and nothing changed, a token shown once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import ADMIN_PASSWORD
from tests.support.web import HX, login

BASE = "/system/backup/users"
PASSWORD = "a long enough password"
INLINE_CODE = re.compile(r"\son[a-z]+=|hx-on|<script(?! src=)|javascript:|\sstyle=")
TOKEN = re.compile(r"pbm_[A-Za-z0-9_-]{40,}")


# ---- helpers ------------------------------------------------------------------------------

def add_user(app, username: str, role: str, password: str = PASSWORD) -> int:
    from services import accounts

    with app.app_context():
        return accounts.create_user(username, role, password).id


def user_row(app, username: str):
    from services.extensions import db
    from services.models import User

    with app.app_context():
        row = db.session.scalars(select(User).where(User.username == username)).first()
        if row is not None:
            db.session.expunge(row)
        return row


def update_user(app, username: str, **fields) -> None:
    from services.extensions import db
    from services.models import User

    with app.app_context():
        row = db.session.scalars(select(User).where(User.username == username)).one()
        for key, value in fields.items():
            setattr(row, key, value)
        db.session.commit()


def activity(app, action: str) -> list[tuple[str, str, str | None]]:
    from services.extensions import db
    from services.models import ActivityEvent

    with app.app_context():
        return [(e.actor, e.target, e.detail) for e in db.session.scalars(
            select(ActivityEvent).where(ActivityEvent.action == action)
            .order_by(ActivityEvent.id))]


def counts(app) -> tuple[int, int, int]:
    """Users, tokens, and activity events of changes made (refusals may be logged too)."""
    from services.extensions import db
    from services.models import ActivityEvent, ApiToken, User

    with app.app_context():
        changes = select(func.count()).where(ActivityEvent.outcome == "ok",
                                             ActivityEvent.action.not_like("token.use"))
        return (db.session.scalar(select(func.count()).select_from(User)),
                db.session.scalar(select(func.count()).select_from(ApiToken)),
                db.session.scalar(changes))


def logged_in(app, username: str, password: str = PASSWORD):
    """A client of its own, logged in as ``username``, with the page's CSRF header."""
    client = app.test_client()
    assert login(client, password=password, username=username).status_code == 302
    page = client.get("/system/backup").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    return client, {**HX, "X-CSRFToken": token}


def signed_in(client) -> bool:
    return client.get("/api/system/backup").status_code == 200


def body(response) -> str:
    text = response.get_data(as_text=True)
    assert not INLINE_CODE.search(text), INLINE_CODE.search(text)
    return text


def post(htmx, path: str, **data):
    return htmx.request("POST", BASE + path, data=data)


# ---- the page -----------------------------------------------------------------------------

def test_the_admin_sees_users_and_tokens_but_no_delete_of_themselves(app, htmx):
    bob = add_user(app, "bob", "viewer")
    admin_id = user_row(app, "admin").id
    page = body(htmx.request("GET", BASE))
    assert "<html" in page and 'id="users"' in page and 'id="tokens"' in page
    assert page.index('id="users"') < page.index('id="tokens"')
    assert 'id="alerts"' in page and "No tokens yet." in page
    assert re.search(r'admin <span class="tag">you</span>', page)
    assert f"{BASE}/{bob}/delete" in page and f"{BASE}/{bob}/role" in page
    assert f"{BASE}/{admin_id}/delete" not in page and f"{BASE}/{admin_id}/role" not in page
    assert f"{BASE}/{admin_id}/password" in page
    assert "Unlock</button>" not in page and "Reset 2FA</button>" not in page  # nobody needs it


def test_create_a_user_who_can_then_log_in(app, htmx):
    response = post(htmx, "", username="clerk", role="operator", password=PASSWORD)
    assert response.status_code == 200
    fragment = body(response)
    assert '<section id="users"' in fragment
    assert "<html" not in fragment and "User clerk created (operator)." in fragment
    assert 'data-username="clerk"' in fragment
    assert user_row(app, "clerk").role == "operator"
    assert activity(app, "user.create") == [("admin", "clerk", "role operator")]
    clerk, _ = logged_in(app, "clerk")
    assert signed_in(clerk)


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"username": "clerk", "role": "operator", "password": "short"}, 400,
     "at least 8 characters"),
    ({"username": "has space", "role": "viewer", "password": PASSWORD}, 400,
     "username must be 1 to 80 letters"),
    ({"username": "clerk", "role": "root", "password": PASSWORD}, 400, "unknown role"),
    ({"username": "admin", "role": "viewer", "password": PASSWORD}, 409, "exists"),
    ({}, 400, "username must be"),
])
def test_a_bad_new_user_is_refused_next_to_the_form(app, htmx, form, status,
                                                    message):
    before = counts(app)
    response = post(htmx, "", **form)
    assert response.status_code == status
    assert response.headers["HX-Retarget"] == "#user-form"
    fragment = body(response)
    assert message in fragment and 'id="user-form"' in fragment
    if form.get("username"):
        assert f'value="{form["username"]}"' in fragment
    if form.get("password"):
        assert form["password"] not in fragment
    assert counts(app) == before


def test_change_a_role_but_never_your_own(app, htmx):
    bob = add_user(app, "bob", "viewer")
    response = post(htmx, f"/{bob}/role", role="operator")
    assert response.status_code == 200 and "bob is now operator." in body(response)
    assert user_row(app, "bob").role == "operator"
    assert activity(app, "user.role") == [("admin", "bob", "viewer -> operator")]

    bad = post(htmx, f"/{bob}/role", role="superuser")
    assert bad.status_code == 400 and "unknown role &#39;superuser&#39;" in body(bad)
    assert bad.headers["HX-Retarget"] == "#users-error"
    admin_id = user_row(app, "admin").id
    own = post(htmx, f"/{admin_id}/role", role="viewer")
    assert own.status_code == 403 and "your own role" in body(own)
    assert user_row(app, "admin").role == "admin"
    assert len(activity(app, "user.role")) == 1


def test_the_last_admin_stays_admin(app, client, api_token):
    """Only an admin token (nobody's account) can even try: an admin user is an admin."""
    bearer = {"Authorization": f"Bearer {api_token}"}
    admin_id = user_row(app, "admin").id
    before = counts(app)
    demote = client.post(f"{BASE}/{admin_id}/role", data={"role": "viewer"}, headers=bearer)
    assert demote.status_code == 409 and "it is the last admin" in body(demote)
    delete = client.post(f"{BASE}/{admin_id}/delete", data={"confirm_username": "admin"},
                         headers=bearer)
    assert delete.status_code == 409 and "it is the last admin" in body(delete)
    assert counts(app) == before and user_row(app, "admin").role == "admin"

    add_user(app, "root", "admin")
    demote = client.post(f"{BASE}/{admin_id}/role", data={"role": "viewer"}, headers=bearer)
    assert demote.status_code == 200 and user_row(app, "admin").role == "viewer"
    assert activity(app, "user.role") == [  # the first try is there too, as its conflict
        ("token:tests", f"/system/backup/users/{admin_id}/role", "POST -> 409"),
        ("token:tests", "admin", "admin -> viewer")]


def test_nobody_deletes_themselves(app, htmx):
    add_user(app, "root", "admin")
    admin_id = user_row(app, "admin").id
    own = post(htmx, f"/{admin_id}/delete", confirm_username="admin")
    assert own.status_code == 403 and "you cannot delete yourself" in body(own)
    assert user_row(app, "admin") is not None and activity(app, "user.delete") == []


def test_reset_a_password_ends_the_users_sessions(app, htmx):
    bob = add_user(app, "bob", "viewer")
    bob_client, _ = logged_in(app, "bob")
    response = post(htmx, f"/{bob}/password", password="the new password")
    assert response.status_code == 200
    assert "New password set for bob; their sessions have ended." in body(response)
    assert not signed_in(bob_client)
    assert login(app.test_client(), password=PASSWORD, username="bob").status_code == 401
    assert login(app.test_client(), password="the new password",
                 username="bob").status_code == 302
    [(actor, target, detail)] = activity(app, "user.password")
    assert (actor, target) == ("admin", "bob") and "the new password" not in detail

    short = post(htmx, f"/{bob}/password", password="short")
    assert short.status_code == 400 and "at least 8 characters" in body(short)
    assert len(activity(app, "user.password")) == 1


def test_an_admin_resetting_their_own_password_stays_logged_in(app, client, htmx):
    elsewhere, _ = logged_in(app, "admin", ADMIN_PASSWORD)
    admin_id = user_row(app, "admin").id
    response = post(htmx, f"/{admin_id}/password", password="my new password!")
    assert response.status_code == 200
    assert signed_in(client) and not signed_in(elsewhere)
    assert login(app.test_client(), password="my new password!").status_code == 302


def test_unlock_a_locked_user(app, htmx):
    from services.models import utcnow

    bob = add_user(app, "bob", "viewer")
    update_user(app, "bob", failed_logins=4, locked_until=utcnow() + timedelta(minutes=15))
    assert login(app.test_client(), username="bob", password=PASSWORD).status_code == 423
    page = body(htmx.request("GET", BASE))
    assert f'hx-post="{BASE}/{bob}/unlock"' in page
    response = post(htmx, f"/{bob}/unlock")
    assert response.status_code == 200 and "bob is unlocked." in body(response)
    assert f"{BASE}/{bob}/unlock" not in body(response)
    row = user_row(app, "bob")
    assert (row.failed_logins, row.locked_until) == (0, None)
    assert login(app.test_client(), username="bob", password=PASSWORD).status_code == 302
    assert activity(app, "user.unlock") == [("admin", "bob", None)]


def test_end_a_users_sessions(app, htmx):
    bob = add_user(app, "bob", "viewer")
    bob_client, _ = logged_in(app, "bob")
    assert signed_in(bob_client)
    response = post(htmx, f"/{bob}/sessions")
    assert response.status_code == 200 and "Every session of bob has ended." in body(response)
    assert not signed_in(bob_client)
    assert activity(app, "user.sessions") == [("admin", "bob", None)]


def test_reset_a_users_second_factor(app, htmx):
    bob = add_user(app, "bob", "viewer")
    update_user(app, "bob", totp_secret="JBSWY3DPEHPK3PXP", totp_last_step=7)
    page = body(htmx.request("GET", BASE))
    assert f'hx-post="{BASE}/{bob}/totp"' in page
    response = post(htmx, f"/{bob}/totp")
    assert response.status_code == 200 and "Two-factor login is off for bob." in body(response)
    row = user_row(app, "bob")
    assert (row.totp_secret, row.totp_last_step) == (None, None)
    assert f"{BASE}/{bob}/totp" not in body(htmx.request("GET", BASE))
    assert activity(app, "user.totp") == [("admin", "bob", "second factor removed")]


def test_delete_needs_the_typed_username(app, htmx):
    bob = add_user(app, "bob", "operator")
    before = counts(app)
    for typed in (None, "", "Bob", "bo"):
        response = post(htmx, f"/{bob}/delete",
                        **({} if typed is None else {"confirm_username": typed}))
        assert response.status_code == 400
        assert response.headers["HX-Retarget"] == "#users-error"
        assert "type the username exactly as shown" in body(response)
        assert "Nothing was deleted." in body(response)
    assert counts(app) == before and user_row(app, "bob") is not None

    response = post(htmx, f"/{bob}/delete", confirm_username="bob")
    assert response.status_code == 200 and "User bob deleted." in body(response)
    assert user_row(app, "bob") is None
    assert 'data-username="bob"' not in body(response)
    assert activity(app, "user.delete") == [("admin", "bob", "role operator")]
    assert login(app.test_client(), username="bob").status_code == 401


def test_unknown_users_and_tokens_are_404(app, htmx):
    before = counts(app)
    for path in ("/x/role", "/99999/role", "/99999999999/unlock", "/0/delete",
                 "/tokens/x/revoke", "/tokens/99999/revoke", "/tokens/12345678901/revoke"):
        response = post(htmx, path, role="viewer", confirm_username="x")
        assert response.status_code == 404, path
        if "/x/" not in path:  # not an id at all: no such route
            assert "reload the page" in body(response) or "no token" in body(response)
    assert counts(app) == before


# ---- tokens -------------------------------------------------------------------------------

def test_a_token_is_shown_once_works_and_can_be_revoked(app, htmx):
    response = post(htmx, "/tokens", name="ci-deploy", role="viewer", expires_in_days="7")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    fragment = body(response)
    assert '<section id="tokens"' in fragment and "<html" not in fragment
    assert "it will not be shown again" in fragment
    [token] = set(TOKEN.findall(fragment))
    assert 'data-name="ci-deploy"' in fragment

    # Never again: not on the page, not in the panel, not in the catalog.
    for path in ("", "/tokens"):
        again = body(htmx.request("GET", BASE + path))
        assert "ci-deploy" in again and token not in again and "pbm_" not in again.replace(
            "Bearer pbm_…", "")
    from services.extensions import db
    from services.models import ApiToken

    with app.app_context():
        row = db.session.scalars(select(ApiToken)).one()
        assert row.token_hash == ApiToken.hash(token) and row.role == "viewer"
        assert timedelta(days=6) < row.expires_at - row.created_at <= timedelta(days=7)
        token_id = row.id
    [(actor, target, detail)] = activity(app, "token.create")
    assert (actor, target) == ("admin", "ci-deploy") and token not in detail

    script = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/system/backup", headers=bearer).status_code == 200
    listed = body(htmx.request("GET", BASE + "/tokens"))
    assert re.search(r'data-label="Last used \(UTC\)"><time', listed)

    revoked = post(htmx, f"/tokens/{token_id}/revoke")
    assert revoked.status_code == 200
    text = body(revoked)
    assert "Token ci-deploy revoked" in text and 'mbadge mbadge-critical">revoked' in text
    assert f"/tokens/{token_id}/revoke" not in text
    assert script.get("/api/system/backup", headers=bearer).status_code == 401
    assert activity(app, "token.revoke") == [("admin", "ci-deploy", None)]


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"name": "has space", "role": "viewer"}, 400, "token name must be"),
    ({"name": "x", "role": "root"}, 400, "unknown role"),
    ({"name": "x", "role": "viewer", "expires_in_days": "abc"}, 400, "whole number of days"),
    ({"name": "x", "role": "viewer", "expires_in_days": "0"}, 400, "whole number of days"),
    ({"name": "x", "role": "viewer", "expires_in_days": "3651"}, 400, "whole number of days"),
    ({"name": "tests", "role": "viewer"}, 409, "exists"),
])
def test_a_bad_new_token_is_refused_next_to_the_form(app, htmx, api_token, form,
                                                     status, message):
    before = counts(app)
    response = post(htmx, "/tokens", **form)
    assert response.status_code == status
    assert response.headers["HX-Retarget"] == "#token-form"
    fragment = body(response)
    assert message in fragment and 'id="token-form"' in fragment
    assert f'value="{form["name"]}"' in fragment and "pbm_" not in fragment.replace(
        "Bearer pbm_…", "")
    assert counts(app) == before

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data


def test_an_empty_expiry_never_expires(app, htmx):
    response = post(htmx, "/tokens", name="prometheus", role="viewer", expires_in_days="")
    assert response.status_code == 200
    assert re.search(r'data-label="Expires \(UTC\)">never', body(response))


# ---- who may ------------------------------------------------------------------------------

def every_change(app, target: int, token_id: int) -> list[tuple[str, dict[str, str]]]:
    return [
        ("", {"username": "intruder", "role": "admin", "password": PASSWORD}),
        (f"/{target}/role", {"role": "admin"}),
        (f"/{target}/password", {"password": "taken over!"}),
        (f"/{target}/unlock", {}), (f"/{target}/sessions", {}), (f"/{target}/totp", {}),
        (f"/{target}/delete", {"confirm_username": "admin"}),
        ("/tokens", {"name": "stolen", "role": "admin"}),
        (f"/tokens/{token_id}/revoke", {}),
    ]


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_operators_and_viewers_get_403_everywhere(app, api_token, role):
    from services.extensions import db
    from services.models import ApiToken

    add_user(app, role, role)
    target = user_row(app, "admin").id
    with app.app_context():
        token_id = db.session.scalars(select(ApiToken.id)).one()
    client, headers = logged_in(app, role)
    before = counts(app)
    page = client.get(BASE)
    assert page.status_code == 403 and "may not do this" in page.get_data(as_text=True)
    assert client.get(BASE + "/tokens", headers=headers).status_code == 403
    for path, data in every_change(app, target, token_id):
        response = client.post(BASE + path, data=data, headers=headers)
        assert response.status_code == 403, (role, path)
    assert counts(app) == before
    admin = user_row(app, "admin")
    assert admin.role == "admin" and admin.check_password(ADMIN_PASSWORD)
    assert signed_in(client)


def test_changes_need_the_csrf_header(app, client):
    assert login(client).status_code == 302
    before = counts(app)
    response = client.post(BASE, data={"username": "clerk", "role": "viewer",
                                       "password": PASSWORD}, headers=HX)
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert counts(app) == before


def test_anonymous_visitors_go_to_the_login(client):
    response = client.get(BASE)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
