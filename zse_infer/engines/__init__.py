"""zse_infer.engines."""
