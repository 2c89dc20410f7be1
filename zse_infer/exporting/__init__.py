"""zse_infer.exporting."""
