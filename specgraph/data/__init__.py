"""Datasets and the preprocessing that turns them into model inputs (nothing downloads)."""
