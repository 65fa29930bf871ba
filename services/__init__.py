"""The domain: settings, the catalog (the app's own metadata database) and one module per concept.

Blueprints, commands and jobs call these; services call the engine (pgbackup) and enqueue jobs.
"""
