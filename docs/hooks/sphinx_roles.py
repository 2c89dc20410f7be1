"""MkDocs hook: the package's docstrings use Sphinx roles (``:class:`Retriever```), which
mkdocstrings shows as written (":class:" before the code). Drop the role, keep the code."""

from __future__ import annotations

import re
from typing import Any

#: ":class:<code>" (rendered) or ":class:`" (in text left as written) -> the code alone
_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):(?=<code>|`)")


def on_post_page(output: str, **kwargs: Any) -> str:
    return _ROLE.sub("", output)
