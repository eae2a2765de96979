"""Data preparation: generated rows into deduplicated train/eval splits, split by chunk."""
