"""The gallery store: format 2 on Lance (store.py), token codecs, the persisted stage-1 index,
and format 1 (format1.py), kept only to migrate old galleries (migrate.py)."""
