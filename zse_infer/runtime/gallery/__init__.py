"""The gallery store: encoded photos on disk and the stage-1 (ret-token) index."""
