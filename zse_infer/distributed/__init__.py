"""The same jobs on Ray (docs/ray.md): indexing, evaluation, serving; Ray (the ``ray`` extra) is imported lazily."""
