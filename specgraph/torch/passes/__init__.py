"""Graph passes over a built model's torch.fx graph, one per file (see optimize.py)."""
