"""The deploy stage: quality, index size and speed of each way to ship the embedder, and interpolation."""

from ragtune.engine.deploy.results import DeployResults, read_deploy

__all__ = ["DeployResults", "read_deploy"]
