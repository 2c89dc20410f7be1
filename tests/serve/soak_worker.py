"""A store worker for the soak test (tests/serve/test_soak.py), run as its own process:

    python soak_worker.py writer EXPORT GALLERY LOG STOP NAME SEED
    python soak_worker.py deleter EXPORT GALLERY LOG STOP WRITER_LOG...

``writer`` indexes distinct in-memory photos in commits of 3 under ids ``NAME-<n>`` until the file
STOP exists, appending each committed id to LOG once ``index`` has returned (so LOG lists only
committed ids). ``deleter`` deletes one id a writer has committed, then compacts, in a loop,
appending ``attempt <id>`` before each delete, ``deleted <id>`` once ``delete`` counted
that row, and ``compacted`` lines. Any exception ends the process with a
traceback on stderr and a non-zero exit (the test asserts both are absent).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

COMMIT = 3


def _log(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()


def writer(r, log: Path, stop: Path, name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 0
    while not stop.exists():
        photos = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(COMMIT)]
        ids = [f"{name}-{n + i}" for i in range(COMMIT)]
        report = r.index(photos, ids=ids, progress=False, commit_size=COMMIT)
        if report.added != COMMIT:
            raise RuntimeError(f"{name}: index added {report.added} of {COMMIT} new photos ({report})")
        n += COMMIT
        _log(log, " ".join(ids))


def deleter(r, log: Path, stop: Path, writer_logs: list[Path]) -> None:
    rng = np.random.default_rng(7)
    deleted: set[str] = set()
    while not stop.exists():
        committed = [i for p in writer_logs if p.exists() for line in p.read_text().splitlines() for i in line.split()]
        candidates = sorted(set(committed) - deleted)
        if candidates:
            victim = candidates[int(rng.integers(len(candidates)))]
            r.refresh()  # a writer's commit since our last look
            _log(log, f"attempt {victim}")
            if r.delete([victim]):
                deleted.add(victim)
                _log(log, f"deleted {victim}")
        r.compact()
        _log(log, "compacted")


def main(argv: list[str]) -> None:
    from zse_infer.runtime.retriever import Retriever

    role, export, gallery, log, stop, *rest = argv
    r = Retriever.load(export, gallery=gallery)
    if role == "writer":
        writer(r, Path(log), Path(stop), rest[0], int(rest[1]))
    else:
        deleter(r, Path(log), Path(stop), [Path(p) for p in rest])
    r.close()


if __name__ == "__main__":
    main(sys.argv[1:])
