import os
import stat
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from pgbackup import ConfigError, ConnectionInfo

URL = "postgresql://alice:s%3Acr%5Cet%40@db.example:6543/sales?sslmode=require"
PASSWORD = "s:cr\\et@"


def test_url_fields() -> None:
    conn = ConnectionInfo.from_url(URL)
    assert (conn.dbname, conn.host, conn.port, conn.user) == ("sales", "db.example", 6543, "alice")


@pytest.mark.parametrize("text", [
    "postgres://alice@db.example/sales",
    "host=db.example user=alice dbname=sales",
])
def test_other_spellings(text: str) -> None:
    conn = ConnectionInfo.from_url(text)
    assert (conn.dbname, conn.host, conn.port, conn.user) == ("sales", "db.example", None, "alice")


def test_password_is_hidden_everywhere_but_conninfo() -> None:
    conn = ConnectionInfo.from_url(URL)
    assert PASSWORD not in repr(conn)
    assert "s%3Acr" not in repr(conn)
    assert conn.redacted() == "postgresql://alice:***@db.example:6543/sales?sslmode=require"
    assert conninfo_to_dict(conn.conninfo)["password"] == PASSWORD
    assert conn.redact_text(f"oops {PASSWORD} leaked") == "oops *** leaked"


def test_redacted_without_password_and_with_socket_dir() -> None:
    conn = ConnectionInfo.from_url("host=/run/postgresql dbname=app")
    assert conn.redacted() == "postgresql:///app?host=/run/postgresql"


def test_for_database_keeps_server_and_credentials() -> None:
    other = ConnectionInfo.from_url(URL).for_database("hr")
    assert (other.dbname, other.host, other.port, other.user) == ("hr", "db.example", 6543, "alice")
    with other.subprocess_env({}) as (env, _dsn):
        assert PASSWORD.replace("\\", "\\\\").replace(":", "\\:") in Path(
            env["PGPASSFILE"]).read_text()


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("   ", "empty"),
    ("postgresql://db.example/", "no database"),
    ("host=db.example", "no database"),
    ("not a url", "malformed"),
    ("mysql://alice@db.example/sales", "unsupported URL scheme"),
    ("postgresql://alice@db.example:99999/sales", "invalid port"),
    ("postgresql://alice@db.example:abc/sales", "invalid port"),
    ("postgresql://a@h1,h2/sales", "multiple hosts"),
])
def test_malformed_input_raises_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ConnectionInfo.from_url(text)


def test_config_error_does_not_echo_the_password() -> None:
    with pytest.raises(ConfigError, match="malformed") as error:
        ConnectionInfo.from_url("postgresql://alice:hunter%zz2@db.example/sales")
    assert "hunter" not in str(error.value)


def test_subprocess_env_uses_a_private_passfile() -> None:
    conn = ConnectionInfo.from_url(URL + "&passfile=/elsewhere")
    with conn.subprocess_env({"PGPASSWORD": "stale", "PATH": "/bin"}) as (env, dsn):
        passfile = Path(env["PGPASSFILE"])
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        assert passfile.read_text() == "*:*:*:*:s\\:cr\\\\et@\n"
        assert "PGPASSWORD" not in env
        assert env["PATH"] == "/bin"
        assert "password" not in dsn and "cr" not in dsn and "passfile" not in dsn
        assert ConnectionInfo.from_url(dsn).host == "db.example"
    assert not passfile.exists()


def test_passfile_is_removed_on_error() -> None:
    conn = ConnectionInfo.from_url(URL)
    with pytest.raises(RuntimeError), conn.subprocess_env() as (env, _dsn):
        passfile = Path(env["PGPASSFILE"])
        raise RuntimeError
    assert not passfile.exists()


def test_no_password_no_passfile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-env")
    conn = ConnectionInfo.from_url("postgresql://alice@db.example/sales")
    with conn.subprocess_env() as (env, dsn):
        assert "PGPASSFILE" not in env or env["PGPASSFILE"] == os.environ.get("PGPASSFILE")
        assert "PGPASSWORD" not in env
        assert ConnectionInfo.from_url(dsn) == conn
