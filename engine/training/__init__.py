"""What both trainers share: arguments, event callbacks, and the torchrun launcher and worker."""
