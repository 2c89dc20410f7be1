"""The bundled demo: its assets and the zse-demo command (data building and training: tools/ in the repository)."""
