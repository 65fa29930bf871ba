"""Schemathesis against the app's own OpenAPI document, one bounded run per operation.

The document is the one the app serves (``GET /api/openapi.json``), loaded through
schemathesis' WSGI support, so what is fuzzed is what a client reads. Every request carries
the bearer token. Three checks run on every response, none weakened:

- ``not_a_server_error``: no 5xx, whatever the input;
- ``status_code_conformance``: every status the app answers is documented for the operation;
- ``response_schema_conformance``: every JSON body matches the documented schema.

Each operation runs against its own app, catalog, Redis database and Pagila copy. The state
it needs to get past "no such id" is seeded first, through the API and a real worker
(completed manual and scheduled backups, a failed backup, a verification, a completed
rehearsal restore, a schedule, a webhook channel that sends to a local sink, a local
destination in a fresh temporary directory and an S3 one on the session's moto server). Every
other generated case then gets one of those real ids in place of the generated one, so
success paths and conflicts are fuzzed too. A few hand-written cases per operation
(``EXPLICIT``) reach states that generated data practically never does (a valid restore
request, a valid channel or destination, a backup asked for while a restore is queued); they
go through the same checks, and some say what their answer must hold besides.
Last, an operator token and a viewer token make one call each, so what the other roles are
answered (403 where the role may not) is held to the document too.

Nothing is excluded. The destructive operations are safe to fuzz here: no worker runs while
fuzzing, so a restore over the protected database (which needs ``confirmDataLoss: true``)
or a backup is only validated and queued, never run, and the Pagila copy belongs to this
test alone. ``DELETE`` removes test-local backups, schedules, channels and destinations only.
A channel test sends to the local sink, never to a generated URL: a generated ``PUT`` may
store one, but that operation's test never sends. Likewise a destination probe only ever
probes the two seeded destinations (this test's temporary directory, the moto server on
loopback): a generated ``POST`` or ``PUT`` may store another path or endpoint, but saving
one only checks that a local path is an existing directory (a stat, nothing written, no
network), and the probe's own test creates no destination.

Bounded and reproducible: schemathesis' examples, coverage and fuzzing phases with
``MAX_EXAMPLES`` per operation, a fixed seed, derandomized Hypothesis, no example database,
no shrinking (every distinct failure is collected and reported, not just the first).
"""

from __future__ import annotations

import http.server
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.feedback import FeedbackSources

# The one internal import: schemathesis' own per-operation test builder (what its pytest
# plugin runs for every operation: examples, coverage and fuzzing phases from the config).
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from blueprints.api.openapi import openapi_document
from tools.localservices import S3Server

MAX_EXAMPLES = 25
SEED = 20261126
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]

# Every operation in the document, built the way the served document is; the first test
# proves the served document has exactly these, so none is left out.
OPERATIONS = sorted(
    (path, method.upper())
    for path, item in openapi_document()["paths"].items()
    for method in item
)

BACKUP = "/api/system/backup"
RESTORE = f"{BACKUP}/restore"
SCHEDULE = f"{BACKUP}/schedule"
CHANNELS = "/api/system/notifications/channels"
DESTINATIONS = "/api/system/destinations"
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def _id(operation: tuple[str, str]) -> str:
    path, method = operation
    return f"{method} {path.removeprefix('/api/system')}"


# ---- seeded state -------------------------------------------------------------------

@pytest.fixture
def webhook_sink() -> Iterator[str]:
    """A local HTTP server that accepts every POST: where seeded channels send."""

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _ok(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _needs(path: str, method: str) -> set[str]:
    """What an operation's success paths need to exist."""
    needs = set()
    if "{backupId}" in path or path in (BACKUP, f"{BACKUP}/retention/preview",
                                        "/api/system/activity") \
            or (path in (f"{BACKUP}/verify", RESTORE) and method == "POST"):
        needs.add("backups")
    if "{jobId}" in path or (path.startswith(RESTORE) and method == "GET"):
        needs |= {"backups", "restore"}
    if "{scheduleId}" in path or path == SCHEDULE:
        needs.add("schedule")
    if "{channelId}" in path or path.startswith("/api/system/notifications") \
            or path == "/api/system/alerts":
        needs.add("channel")
    if path.startswith(DESTINATIONS):
        needs.add("destination")
    if "{destination}" in path:
        needs.add("failed copy")
    return needs


def _s3_destination(name: str = "offsite", **changes: Any) -> dict[str, Any]:
    """An S3 destination on the session's moto server ("$s3Endpoint", "$bucket")."""
    return {"name": name, "type": "s3", "bucket": "$bucket", "prefix": "shop/db",
            "endpointUrl": "$s3Endpoint", "region": S3Server.REGION,
            "accessKeyId": S3Server.ACCESS_KEY_ID,
            "secretAccessKey": S3Server.SECRET_ACCESS_KEY, "forcePathStyle": True, **changes}


def _seed(app, api, run_worker, needs: set[str], sink: str, request,
          tmp_path: Path) -> dict[str, list[Any]]:
    """Create what ``needs`` names through the API and a real worker; returns real ids
    (and, for destinations, the places the seeded ones use)."""
    real: dict[str, list[Any]] = {}
    if "backups" in needs or "schedule" in needs:
        schedule = _ok(api.post(SCHEDULE, json={
            "name": "nightly", "type": "full", "frequency": "daily", "time": "02:00"}), 201)
        real["scheduleId"] = [schedule["id"]]
    if "backups" in needs:
        scheduled = _ok(api.post(f"{SCHEDULE}/{schedule['id']}/run"), 202)["backupId"]
        manual = _ok(api.post(BACKUP, json={"type": "schema-only", "compress": False}), 202)
        run_worker()  # the two backups, then their automatic integrity checks
        verify = _ok(api.post(f"{BACKUP}/verify", json={"backupId": scheduled,
                                                       "level": "integrity"}), 202)
        good = app.config["DATABASE_URL"]
        app.config["DATABASE_URL"] = good.rsplit("/", 1)[0] + "/no_such_database"
        failed = _ok(api.post(BACKUP, json={"type": "full"}), 202)
        run_worker()
        app.config["DATABASE_URL"] = good
        real["backupId"] = [scheduled, manual["backupId"], failed["backupId"]]
        real["jobId"] = [scheduled, verify["jobId"], failed["jobId"]]
    if "failed copy" in needs:  # stored locally, failed (a retry waiting) at "unreachable"
        _ok(api.post(DESTINATIONS, json={"name": "unreachable", "type": "s3", "bucket": "gone",
                                         "endpointUrl": "http://127.0.0.1:9",
                                         "required": False}), 201)
        copied = _ok(api.post(BACKUP, json={"type": "schema-only",
                                            "destinations": ["local", "unreachable"]}), 202)
        run_worker()
        real["backupId"].insert(0, copied["backupId"])
        real["destination"] = ["unreachable", "local"]
    if "restore" in needs:
        rehearsal = _ok(api.post(RESTORE, json={
            "backupId": real["backupId"][0], "dryRun": True, "rehearse": True}), 202)
        run_worker()
        real["restoreId"] = [rehearsal["rehearsal"]["restoreId"]]
        real["jobId"].append(rehearsal["rehearsal"]["jobId"])
    if "channel" in needs:
        channel = _ok(api.post(CHANNELS, json={
            "name": "sink", "kind": "webhook", "config": {"url": sink, "secret": "s3cret"}}),
            201)
        real["channelId"] = [channel["id"]]
        _ok(api.post(f"{CHANNELS}/{channel['id']}/test"), 200)
    if "destination" in needs:
        nas = tmp_path / "destination"  # fresh: the only directory a probe here writes to
        nas.mkdir()
        s3_server = request.getfixturevalue("s3_server")
        real["localPath"] = [str(nas)]
        real["s3Endpoint"] = [s3_server.endpoint_url]
        real["bucket"] = [request.getfixturevalue("bucket")]
        local = _ok(api.post(DESTINATIONS, json={"name": "nas", "type": "local",
                                                 "path": str(nas)}), 201)
        s3 = _ok(api.post(DESTINATIONS, json=_resolve(_s3_destination(), real)), 201)
        real["destinationId"] = [local["id"], s3["id"]]
        real["s3DestinationId"] = [s3["id"]]
        for destination in (local, s3):
            probe = _ok(api.post(f"{DESTINATIONS}/{destination['id']}/test"), 200)
            assert probe["ok"], probe
    return real


def _queue_overwrite_restore(api, real: dict[str, list[Any]]) -> None:
    _ok(api.post(RESTORE, json={"backupId": real["backupId"][0], "confirmDataLoss": True}),
        202)


# Hand-written cases, run before the generated ones: (prepare, case fields), where "$name"
# stands for the first real id (or seeded place) of that name, and optionally what the
# answer must hold besides the checks: a 2xx whose JSON body has these items.
Explicit = (tuple[Callable | None, dict[str, Any]]
            | tuple[Callable | None, dict[str, Any], dict[str, Any]])
EXPLICIT: dict[tuple[str, str], list[Explicit]] = {
    (BACKUP, "POST"): [
        (None, {"body": {"type": "full", "includeData": True, "compress": False}}),
        # while a restore over the protected database (this test's own Pagila copy) is
        # queued; the worker then runs that restore
        (_queue_overwrite_restore, {"body": {"type": "full"}}),
    ],
    (RESTORE, "POST"): [
        (None, {"body": {"backupId": "$backupId", "dryRun": True}}),
        (None, {"body": {"backupId": "$backupId", "dryRun": True,
                         "targetDatabase": "fuzz_new_db"}}),
        (None, {"body": {"backupId": "$backupId", "dryRun": True, "rehearse": True}}),
        (None, {"body": {"backupId": "$backupId", "targetDatabase": "pagila_template"}}),
        (None, {"body": {"backupId": "$backupId", "targetDatabase": "fuzz_new_db"}}),
        (None, {"body": {"backupId": "$backupId", "confirmDataLoss": True}}),
    ],
    (f"{BACKUP}/verify", "POST"): [
        (None, {"body": {"backupId": "$backupId", "level": "restore"}}),
    ],
    (SCHEDULE, "POST"): [
        (None, {"body": {"name": "weekly", "frequency": "weekly", "dayOfWeek": 6,
                         "time": "03:15", "timezone": "Europe/Berlin"}}),
        (None, {"body": {"name": "monthly", "frequency": "monthly", "dayOfMonth": 31}}),
        (None, {"body": {"name": "cron", "frequency": "cron", "cron": "*/15 * * * *"}}),
        (None, {"body": {"name": "hourly", "frequency": "hourly", "time": "00:45",
                         "enabled": False, "verify": "restore"}}),
    ],
    (CHANNELS, "POST"): [
        (None, {"body": {"name": "hook", "kind": "webhook",
                         "config": {"url": "http://127.0.0.1:9/x", "secret": "x"}}}),
        (None, {"body": {"name": "hook", "kind": "slack",
                         "config": {"url": "https://hooks.example.invalid/T1"}}}),
        (None, {"body": {"name": "mail", "kind": "email", "enabled": False,
                         "config": {"host": "127.0.0.1", "port": 2525, "from": "a@b.example",
                                    "to": ["c@d.example"], "starttls": False,
                                    "username": "u", "password": "p"}}}),
    ],
    (f"{CHANNELS}/{{channelId}}", "PUT"): [
        (None, {"path_parameters": {"channelId": "$channelId"},
                "body": {"name": "renamed", "kind": "webhook", "enabled": False,
                         "config": {"url": "http://127.0.0.1:9/y"}}}),
        (None, {"path_parameters": {"channelId": "$channelId"},
                "body": {"name": "renamed", "kind": "slack",
                         "config": {"url": "https://hooks.example.invalid/T2"}}}),
    ],
    (DESTINATIONS, "POST"): [
        (None, {"body": {"name": "second-nas", "type": "local", "path": "$localPath",
                         "required": False, "encryptTo": [RECIPIENT],
                         "retention": {"days": 30, "keepAtLeast": 2}}},
         {"type": "local", "path": "$localPath", "builtin": False}),
        (None, {"body": _s3_destination("second-offsite", objectLock={
            "mode": "GOVERNANCE", "days": 7}, retention={"days": 90})},
         {"type": "s3", "secretAccessKey": "set",
          "objectLock": {"mode": "GOVERNANCE", "days": 7}}),
        (None, {"body": _s3_destination("no-keys", accessKeyId=None, secretAccessKey=None,
                                        forcePathStyle=False, prefix="")},
         {"secretAccessKey": None, "accessKeyId": None}),
        # a part longer than a file name may be (ENAMETOOLONG when checked): a 400
        (None, {"body": {"name": "long", "type": "local", "path": "/" + "a" * 300}}),
    ],
    (f"{DESTINATIONS}/{{destinationId}}", "PUT"): [
        # no secretAccessKey: the stored one is kept
        (None, {"path_parameters": {"destinationId": "$s3DestinationId"},
                "body": {k: v for k, v in _s3_destination(prefix="elsewhere").items()
                         if k != "secretAccessKey"}},
         {"prefix": "elsewhere", "secretAccessKey": "set"}),
        (None, {"path_parameters": {"destinationId": "$destinationId"},
                "body": {"name": "nas", "type": "local", "path": "$localPath",
                         "required": False}},
         {"required": False}),
    ],
    (f"{BACKUP}/{{backupId}}/copies/{{destination}}/retry", "POST"): [
        (None, {"path_parameters": {"backupId": "$backupId", "destination": "$destination"}},
         {"status": "retrying"}),
    ],
    (f"{DESTINATIONS}/{{destinationId}}/test", "POST"): [
        (None, {"path_parameters": {"destinationId": "$destinationId"}}, {"ok": True}),
        (None, {"path_parameters": {"destinationId": "$s3DestinationId"}}, {"ok": True}),
    ],
}


# What the operator and viewer tokens send (default: an empty object, where there is a body).
ROLE_BODIES = {
    (RESTORE, "POST"): {"backupId": "$backupId", "confirmDataLoss": True},  # admin only
}


def _resolve(value: Any, real: dict[str, list[Any]]) -> Any:
    if isinstance(value, dict):
        return {key: _resolve(item, real) for key, item in value.items()}
    if isinstance(value, str) and value.startswith("$"):
        return real[value[1:]][0]
    return value


def _tokens(app, *roles: str) -> list[str]:
    from services.extensions import db
    from services.models import ApiToken

    tokens = []
    with app.app_context():
        for role in roles:
            row, token = ApiToken.mint(f"fuzz-{role}", role)
            db.session.add(row)
            tokens.append(token)
        db.session.commit()
    return tokens


def _with_real_ids(case: schemathesis.Case, real: dict[str, list[Any]], n: int) -> None:
    for name in case.path_parameters or {}:
        if name in real:
            case.path_parameters[name] = real[name][n % len(real[name])]
    if isinstance(case.body, dict) and "backupId" in case.body and "backupId" in real:
        case.body["backupId"] = real["backupId"][n % len(real["backupId"])]


# ---- the tests ----------------------------------------------------------------------

def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "suppress-health-check": ["all"],
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            "no-shrink": True,
        },
    })


def test_the_served_document_has_exactly_the_fuzzed_operations(client, api_token):
    served = client.get("/api/openapi.json",
                        headers={"Authorization": f"Bearer {api_token}"}).get_json()
    assert sorted((path, method.upper()) for path, item in served["paths"].items()
                  for method in item) == OPERATIONS
    assert set(EXPLICIT) <= set(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS, ids=_id)
def test_operation_conforms_to_the_document(
    app, api, api_token, run_worker, webhook_sink, request, tmp_path,
    operation: tuple[str, str],
):
    path, method = operation
    real = _seed(app, api, run_worker, _needs(path, method), webhook_sink, request, tmp_path)
    auth = {"Authorization": f"Bearer {api_token}"}
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, headers=auth,
                                            config=_config())
    api_operation = schema[path][method]
    failures: dict[str, str] = {}
    statuses: Counter[int] = Counter()
    calls = count()

    def call_and_check(case: schemathesis.Case, headers: dict[str, str] = auth) -> Any:
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            titles = sorted({failure.title for failure in group.exceptions})
            failures.setdefault(f"{response.status_code} {titles}", str(group))
        return response

    def generated(case: schemathesis.Case) -> None:
        n = next(calls)
        if n % 2:
            _with_real_ids(case, real, n // 2)
        call_and_check(case)

    explicit = EXPLICIT.get(operation, [])
    for prepare, fields, *expected in sorted(explicit, key=lambda item: item[0] is None):
        if prepare is not None:  # prepared ones first
            prepare(api, real)
        response = call_and_check(api_operation.Case(media_type="application/json",
                                                     **_resolve(fields, real)))
        for want in (_resolve(item, real) for item in expected):
            body = response.json() if 200 <= response.status_code < 300 else None
            if not isinstance(body, dict) or any(key not in body or body[key] != value
                                                 for key, value in want.items()):
                failures.setdefault(f"explicit {fields}", f"{_resolve(fields, real)} answered "
                                    f"{response.status_code} {response.text}, not {want}")
        if prepare is not None:
            run_worker()  # what it queued runs, so later cases start from a settled state
    build_operation_test(config=schema.config, operation=api_operation, test_func=generated,
                         given_kwargs={}, feedback=FeedbackSources())()
    for token in _tokens(app, "operator", "viewer"):  # what the other roles are answered
        has_body = "requestBody" in openapi_document()["paths"][path][method.lower()]
        body = _resolve(ROLE_BODIES.get(operation, {}), real)
        call_and_check(api_operation.Case(
            path_parameters={name: real[name][0] for name in re.findall(r"{(\w+)}", path)},
            **({"body": body, "media_type": "application/json"} if has_body else {}),
        ), headers={"Authorization": f"Bearer {token}"})

    print(f"{_id(operation)}: {sum(statuses.values())} calls, statuses {dict(statuses)}")
    assert next(calls) > MAX_EXAMPLES // 2, "the run generated too few cases to mean much"
    assert not failures, (
        f"{_id(operation)}: {len(failures)} distinct failures\n\n" + "\n\n".join(failures.values())
    )
    assert any(200 <= status < 300 for status in statuses), "no success path was reached"

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data
