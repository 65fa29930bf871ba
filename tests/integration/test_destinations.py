"""/api/system/destinations: the built-in local one, local directories and S3 buckets (a real
S3 server, moto, on loopback), their probe, and the write-only secret."""

from __future__ import annotations

import sqlite3

import pytest

from tools.localservices import S3Server

pytestmark = pytest.mark.empty_target  # no backup is taken here

DESTINATIONS = "/api/system/destinations"
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def s3_body(s3_server: S3Server, bucket_name: str, **changes) -> dict:
    return {"name": "offsite", "type": "s3", "bucket": bucket_name, "prefix": "shop/db",
            "endpointUrl": s3_server.endpoint_url, "region": "us-east-1",
            "accessKeyId": S3Server.ACCESS_KEY_ID,
            "secretAccessKey": S3Server.SECRET_ACCESS_KEY, "forcePathStyle": True,
            "encryptTo": [RECIPIENT], "retention": {"days": 90, "keepAtLeast": 3}, **changes}


def test_the_builtin_destination_is_backup_dir(api, app):
    [local] = api.get(DESTINATIONS).get_json()["destinations"]
    assert local == {
        "id": None, "name": "local", "type": "local", "builtin": True,
        "path": app.config["BACKUP_DIR"], "encryptTo": [], "required": True,
        "retention": {"days": None, "keepAtLeast": None}, "objectLock": None,
        "createdAt": None,
        "health": {"lastGoodCopyAt": None, "lastError": None, "lastErrorAt": None,
                   "consecutiveFailures": 0, "storedCopies": 0, "bytesStored": 0}}


def test_an_s3_destination_keeps_its_secret_to_itself(api, app, s3_server, bucket):
    created = api.post(DESTINATIONS, json=s3_body(s3_server, bucket))
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secretAccessKey"] == "set" and body["encryptTo"] == [RECIPIENT]
    assert (body["bucket"], body["prefix"], body["retention"]) == (
        bucket, "shop/db", {"days": 90, "keepAtLeast": 3})
    shown = api.get(f"{DESTINATIONS}/{body['id']}")
    listed = api.get(DESTINATIONS)
    for response in (created, shown, listed):
        assert S3Server.SECRET_ACCESS_KEY not in response.get_data(as_text=True)
    catalog = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    with sqlite3.connect(catalog) as conn:
        [(stored,)] = conn.execute("SELECT secret FROM destinations").fetchall()
    assert stored.startswith("enc:v1:") and S3Server.SECRET_ACCESS_KEY not in stored

    probe = api.post(f"{DESTINATIONS}/{body['id']}/test").get_json()
    assert probe == {"ok": True, "message": "wrote, read back and deleted 4096 bytes"}
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_put_without_the_secret_keeps_it(api, s3_server, bucket):
    destination_id = api.post(DESTINATIONS, json=s3_body(s3_server, bucket)).get_json()["id"]
    body = s3_body(s3_server, bucket, prefix="elsewhere")
    del body["secretAccessKey"]
    updated = api.put(f"{DESTINATIONS}/{destination_id}", json=body).get_json()
    assert (updated["prefix"], updated["secretAccessKey"]) == ("elsewhere", "set")
    assert api.post(f"{DESTINATIONS}/{destination_id}/test").get_json()["ok"] is True


def test_the_probe_says_in_one_sentence_what_failed(api, s3_server, bucket):
    unreachable = s3_body(s3_server, bucket, endpointUrl="http://127.0.0.1:9")
    destination_id = api.post(DESTINATIONS, json=unreachable).get_json()["id"]
    probe = api.post(f"{DESTINATIONS}/{destination_id}/test").get_json()
    assert probe["ok"] is False
    assert probe["message"].startswith("writing a probe object failed: ")
    assert "127.0.0.1:9" in probe["message"] and "\n" not in probe["message"]
    assert S3Server.SECRET_ACCESS_KEY not in probe["message"]


def test_a_local_destination_is_an_existing_directory(api, tmp_path):
    nas = tmp_path / "nas"
    missing = api.post(DESTINATIONS, json={"name": "nas", "type": "local", "path": str(nas)})
    assert missing.status_code == 400
    assert "is not an existing directory" in missing.get_json()["error"]["message"]
    nas.mkdir()
    created = api.post(DESTINATIONS, json={"name": "nas", "type": "local", "path": str(nas)})
    assert created.status_code == 201
    probe = api.post(f"{DESTINATIONS}/{created.get_json()['id']}/test").get_json()
    assert probe["ok"] is True and list(nas.iterdir()) == []
    assert api.delete(f"{DESTINATIONS}/{created.get_json()['id']}").status_code == 200
    assert [d["name"] for d in api.get(DESTINATIONS).get_json()["destinations"]] == ["local"]


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "local"}, "is the built-in destination"),
    ({"encryptTo": ["age1nope"]}, "age recipient 1"),
    ({"encryptTo": ["AGE-SECRET-KEY-1QQQ"]}, "is a secret key, not a public key"),
    ({"bucket": "Not_A_Bucket"}, "bucket must be 3-63 lowercase"),
    ({"endpointUrl": "ftp://x"}, "endpointUrl must be an http"),
    ({"accessKeyId": None}, "a secretAccessKey needs its accessKeyId"),
    ({"objectLock": {"mode": "FOREVER", "days": 1}}, "objectLock.mode"),
    ({"prefix": "../x"}, "prefix may use"),
])
def test_bad_destinations_are_refused_with_a_reason(api, s3_server, bucket, change, message):
    response = api.post(DESTINATIONS, json=s3_body(s3_server, bucket, **change))
    assert response.status_code in (400, 409)
    assert message in response.get_data(as_text=True)
    assert S3Server.SECRET_ACCESS_KEY not in response.get_data(as_text=True)
    assert [d["name"] for d in api.get(DESTINATIONS).get_json()["destinations"]] == ["local"]


def test_two_destinations_cannot_share_a_name(api, s3_server, bucket):
    assert api.post(DESTINATIONS, json=s3_body(s3_server, bucket)).status_code == 201
    again = api.post(DESTINATIONS, json=s3_body(s3_server, bucket))
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
