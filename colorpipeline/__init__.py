"""nightgrade.colorpipeline."""
