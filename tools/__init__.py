"""Development-time tools of the bundled demo model: its data, its training, its evaluation.

Not part of the installed package (no wheel holds this folder): run from the repository root as
``python -m tools.<module>`` (``tools/README.md`` has the whole recipe). These modules import
``zse_infer``; ``zse_infer`` never imports them.
"""

from pathlib import Path

# The committed tables (concepts, split, icon sets, Quick, Draw! mapping).
DATA = Path(__file__).resolve().parent / "data"
# The project's shared folder beside the checkout (reserved concepts, Quick, Draw! drawings):
# read at development and test time, never copied into the repository.
SHARED = Path(__file__).resolve().parents[2] / "shared"
