"""Connection settings for one database, with the password kept out of sight.

The password lives only in :attr:`ConnectionInfo.conninfo` (handed to psycopg). Child
processes (pg_dump, pg_restore, psql) get it through a temporary 0600 passfile, never
through argv or the environment, where other users or logs could see it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgbackup.errors import ConfigError

REDACTED = "***"
_URL_SCHEME_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*)://")
_URL_SCHEMES = ("postgresql", "postgres")

# Where a password may sit in raw input that libpq failed to parse (for scrubbing errors).
_RAW_PASSWORD_PATTERNS = (
    re.compile(r"://[^/@:]*:([^@/]*)@"),
    re.compile(r"[?&]password=([^&#]*)"),
    re.compile(r"\bpassword\s*=\s*'((?:[^'\\]|\\.)*)'"),
    re.compile(r"\bpassword\s*=\s*([^\s']\S*)"),
)


@dataclass(frozen=True)
class ConnectionInfo:
    """A validated libpq connection string (key=value form)."""

    conninfo: str = field(repr=False)
    _params: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_params", _parse(self.conninfo))

    @classmethod
    def from_url(cls, url: str) -> ConnectionInfo:
        """Accept ``postgresql://``/``postgres://`` URLs or key=value strings."""
        return cls(make_conninfo("", **_parse(url)))

    def __repr__(self) -> str:
        return f"ConnectionInfo({self.redacted()!r})"

    @property
    def dbname(self) -> str:
        return self._params["dbname"]

    @property
    def host(self) -> str | None:
        return self._params.get("host")

    @property
    def port(self) -> int | None:
        port = self._params.get("port")
        return int(port) if port else None

    @property
    def user(self) -> str | None:
        return self._params.get("user")

    def for_database(self, dbname: str) -> ConnectionInfo:
        """The same server and credentials, another database."""
        return ConnectionInfo(make_conninfo(self.conninfo, dbname=dbname))

    def redacted(self) -> str:
        """A URL safe to display or log: the password, if any, reads ``***``."""
        params = dict(self._params)
        user, password = params.pop("user", ""), params.pop("password", "")
        host, port = params.pop("host", ""), params.pop("port", "")
        dbname = params.pop("dbname")
        if host.startswith("/"):
            params["host"], host = host, ""
        elif ":" in host:
            host = f"[{host}]"
        auth = quote(user, safe="") + (f":{REDACTED}" if password else "")
        netloc = (f"{auth}@" if auth else "") + host + (f":{port}" if port else "")
        query = f"?{urlencode(params, safe='/')}" if params else ""
        return f"postgresql://{netloc}/{quote(dbname, safe='')}{query}"

    def redact_text(self, text: str) -> str:
        """``text`` with this connection's password replaced by ``***``."""
        password = self._params.get("password")
        return text.replace(password, REDACTED) if password else text

    @contextmanager
    def subprocess_env(
        self, base_env: Mapping[str, str] | None = None
    ) -> Iterator[tuple[dict[str, str], str]]:
        """Yield ``(env, dsn)`` for a libpq client tool; pass the dsn as ``--dbname=<dsn>``.

        The dsn has no password: it is written to a private passfile named by PGPASSFILE
        in ``env`` and deleted when the block exits. Only an allow-list of the caller's
        environment is passed on (never PGPASSWORD, nor the app's own settings such as a
        DATABASE_URL with its password), since a process's environment is readable by
        the same user.
        """
        env = tool_env(base_env)
        params = dict(self._params)
        password = params.pop("password", "")
        if not password:
            yield env, make_conninfo("", **params)
            return
        params.pop("passfile", None)  # it would take precedence over PGPASSFILE
        with _passfile(password) as path:
            env["PGPASSFILE"] = str(path)
            yield env, make_conninfo("", **params)


_INHERITED = {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER", "LOGNAME"}


def tool_env(base_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for any PostgreSQL client tool we start: an allow-list of the
    caller's, so none of the app's own settings (a DATABASE_URL with its password, the
    SECRET_KEY) reach a process whose environment the same user can read."""
    source = os.environ if base_env is None else base_env
    return {key: value for key, value in source.items() if _inheritable(key)}


def _inheritable(key: str) -> bool:
    """Locale, paths and libpq's own PG* settings, except a password."""
    return (key in _INHERITED or key.startswith("LC_")
            or (key.startswith("PG") and key != "PGPASSWORD"))


def _parse(text: str) -> dict[str, str]:
    """Parse and validate a connection string, raising ConfigError with a readable reason."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("connection string is empty")
    scheme = _URL_SCHEME_RE.match(text)
    if scheme and scheme[1] not in _URL_SCHEMES:
        raise ConfigError(f"unsupported URL scheme {scheme[1]!r}: use postgresql://")
    try:
        parsed = conninfo_to_dict(text.strip())
    except psycopg.Error as exc:
        reason = _scrub_raw_passwords(str(exc).strip(), text)
        raise ConfigError(f"malformed connection string: {reason}") from None
    params = {key: str(value) for key, value in parsed.items() if value is not None}
    if not params.get("dbname"):
        raise ConfigError("connection string names no database (dbname)")
    if "," in params.get("host", "") + params.get("port", ""):
        raise ConfigError("multiple hosts in one connection string are not supported")
    port = params.get("port")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"invalid port {port!r}: expected a number from 1 to 65535")
    if any(char in params.get("password", "") for char in "\r\n"):
        raise ConfigError("passwords containing line breaks are not supported")
    return params


def _scrub_raw_passwords(message: str, raw: str) -> str:
    fragments = {
        fragment
        for pattern in _RAW_PASSWORD_PATTERNS
        for match in pattern.finditer(raw)
        for fragment in (match[1], unquote(match[1]))
        if fragment
    }
    for fragment in sorted(fragments, key=len, reverse=True):
        message = message.replace(fragment, REDACTED)
    return message


@contextmanager
def _passfile(password: str) -> Iterator[Path]:
    """A 0600 passfile matching any server, database and user; deleted on exit."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    fd, name = tempfile.mkstemp(prefix="pgbackup-", suffix=".pgpass")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"*:*:*:*:{escaped}\n")
        yield path
    finally:
        path.unlink(missing_ok=True)
