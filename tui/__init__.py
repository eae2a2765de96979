"""The ragtune terminal wizard (Textual); it drives ``engine.api`` and renders engine events."""
