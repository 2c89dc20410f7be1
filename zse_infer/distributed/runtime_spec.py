"""A picklable recipe (sessions do not pickle) to open the driver's runtime on a worker (same export path on all)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InputError
from ..runtime.runners.select import BACKENDS


@dataclass(frozen=True)
class RuntimeSpec:
    export_dir: str
    backend: str = "auto"
    precision: str | None = None
    threads: int | None = None  # intra-op threads per worker: its CPU share, not the whole node
    relation: str = "auto"

    @classmethod
    def of(cls, retriever, threads: int | None = None) -> RuntimeSpec:
        """The runtime ``retriever`` runs (same backend family, precision and relation head)."""
        return replace(cls.of_indexer(retriever, threads), relation=retriever.searcher.relation)

    @classmethod
    def of_indexer(cls, indexer, threads: int | None = None) -> RuntimeSpec:
        """The runtime an :class:`~zse_infer.runtime.indexer.Indexer` (or a Retriever) encodes with."""
        if indexer.export_dir is None:
            raise InputError("this indexer has no export folder to re-open on workers (make it through Retriever.load)")
        backend = indexer.runners.backend if indexer.runners.backend in BACKENDS else "auto"
        return cls(str(Path(indexer.export_dir).absolute()), backend, indexer.runners.precision, threads)

    def runners(self):
        from ..manifest import Manifest
        from ..runtime.runners.select import open_runners

        manifest = Manifest.load(self.export_dir, verify=True)
        return manifest, open_runners(self.export_dir, manifest, self.backend, self.precision, None, None, self.threads)

    def retriever(self, gallery: str | None, storage_options: dict[str, str] | None = None):
        """This runtime over ``gallery``, created empty where none exists yet (a served one may be filled later)."""
        from ..runtime.retriever import Retriever

        return Retriever.load(
            self.export_dir,
            gallery,
            create=True,
            backend=self.backend,
            precision=self.precision,
            threads=self.threads,
            relation=self.relation,
            storage_options=storage_options,
        )
