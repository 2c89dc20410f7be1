"""Evaluation: split readers (``datasets``), ranking metrics (``metrics``), the protocol
that runs a ``Retriever`` over a split (``protocol``) and the results page (``results_page``)."""
