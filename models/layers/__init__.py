"""Building blocks of the nets, one concept per module (PyTorch)."""
