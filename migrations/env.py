"""Alembic's entry point for the catalog's revisions.

Run from catalog_schema.py at start-up (which hands over a connection holding the
migration lock) or by Flask-Migrate's ``flask --app app db ...`` commands (which need the
app). Logging is left as the app configured it.
"""

from alembic import context
from flask import current_app

from services import models  # noqa: F401  (registers the tables on db.metadata)
from services.extensions import db


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=db.metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against the catalog")
given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    with current_app.extensions["migrate"].db.engine.connect() as connection:
        run(connection)
