"""nightgrade.server."""
