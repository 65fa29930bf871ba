"""Tool identity recorded in every manifest."""

from __future__ import annotations

TOOL_NAME = "pg-backup-manager"
__version__ = "0.1.0"
