"""The bi-encoder stage: Matryoshka fine-tuning, its losses, and the corpus rotation."""
