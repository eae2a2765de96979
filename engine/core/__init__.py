"""The pieces every stage shares: errors, events, the workspace, stage declarations, model loading."""
