"""zse_infer.runtime."""
