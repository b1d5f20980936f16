"""nightgrade.models."""
