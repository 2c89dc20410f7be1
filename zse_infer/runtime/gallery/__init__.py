"""The gallery store: format 2 on Lance (store.py), codecs, stage 1, and format 1 (kept only for migrate.py)."""
