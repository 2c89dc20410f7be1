"""zse_infer.cli."""
