"""The HTMX dashboard at /system/backup: one page (``page``) in sections, one module per panel.

Full pages for the browser, HTML fragments for htmx. Errors from the services go through
the app's error handlers, which render ``error.html`` as a bare alert for htmx requests;
the restore panel shows its refusals next to the form that was sent instead. The panels
with their own URL prefix are nested blueprints: endpoints ``dashboard.<panel>.<view>``.
"""

from flask import Blueprint

from blueprints.dashboard import account, destinations, labels, monitoring, schedules, users

bp = Blueprint("dashboard", __name__)
labels.register(bp)
for panel in (schedules, monitoring, users, account, destinations):
    bp.register_blueprint(panel.bp)

# On bp, and chains (a panel) uses the restore panel of restores: imported once bp exists.
from blueprints.dashboard import backups, chains, page, restores  # noqa: E402

bp.register_blueprint(chains.bp)
bp.register_blueprint(page.sections)

__all__ = ["backups", "bp", "chains", "page", "restores"]
