"""Generators that turn chunks into training rows: LLM-free pseudo-queries or an LLM via litellm."""
