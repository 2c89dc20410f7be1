#!/usr/bin/env python3
"""The package's size in lines of Python (every ``zse_infer/**/*.py``, blank lines and docstrings included, as
``wc -l`` counts them), checked against a budget so that it does not regrow unnoticed.

    python .ci/check_size.py

Issue 20 set the budget: ``zse_infer/`` <= 13,500 lines "with what the issues before this one add". Raising it is a
decision for the commit that needs it, said in its message; lower it when the package shrinks.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zse_infer"
BUDGET = 13_500


def count(folder: Path = PACKAGE) -> dict[str, int]:
    return {
        str(path.relative_to(folder.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(folder.rglob("*.py"))
    }


def main() -> int:
    lines = count()
    total = sum(lines.values())
    largest = sorted(lines.items(), key=lambda item: -item[1])[:5]
    report = ", ".join(f"{name} {n}" for name, n in largest)
    if total > BUDGET:
        print(f"zse_infer/: {total} lines of Python, over the budget of {BUDGET}; largest: {report}", file=sys.stderr)
        return 1
    print(f"zse_infer/: {total} lines of Python in {len(lines)} files (budget {BUDGET}); largest: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
