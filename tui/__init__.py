"""The ragtune terminal wizard (Textual); it drives ``ragtune.engine.api`` and renders engine events."""
