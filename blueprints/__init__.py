"""HTTP blueprints: the JSON API, the HTMX dashboard and the login pages."""
