"""Running the same jobs on a Ray cluster: indexing (Ray Data), evaluation (Ray actors) and
serving (Ray Serve). Ray is the optional extra ``ray``; nothing here imports it at import time."""
