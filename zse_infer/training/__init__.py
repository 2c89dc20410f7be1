"""Training a small ZSE model (torch side)."""
