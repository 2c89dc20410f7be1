"""A Retriever wrapper for fault injection: chosen methods can wait on a gate, raise, and be counted."""

from __future__ import annotations

import threading
from collections import Counter


class Faulty:
    """Delegates everything to ``inner``; for the methods named in ``gates``/``errors``, signals
    ``entered[name]``, then waits for ``gates[name]`` (set it to release) and/or raises ``errors[name]``."""

    def __init__(self, inner):
        self._inner = inner
        self.gates: dict[str, threading.Event] = {}
        self.errors: dict[str, BaseException] = {}
        self.entered: dict[str, threading.Event] = {}
        self.calls: Counter = Counter()

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def watched(*args, **kwargs):
            self.calls[name] += 1
            self.entered.setdefault(name, threading.Event()).set()
            gate = self.gates.get(name)
            if gate is not None and not gate.wait(60):
                raise RuntimeError(f"test gate for {name} was never opened")
            error = self.errors.get(name)
            if error is not None:
                raise error
            return attr(*args, **kwargs)

        return watched

    def __len__(self) -> int:
        return len(self._inner)

    def entered_event(self, name: str) -> threading.Event:
        return self.entered.setdefault(name, threading.Event())
