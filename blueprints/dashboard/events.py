"""The htmx events (HX-Trigger) on which the dashboard's panels reload themselves."""

REFRESH_EVENT = "backups-changed"
RESTORES_EVENT = "restores-changed"
