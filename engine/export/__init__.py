"""The export stage: model cards with the measured tables, and the Hub push."""

from ragtune.engine.export.stage import export_models, push_folder

__all__ = ["export_models", "push_folder"]
