"""Reusable widgets of the wizard: the step bar, config forms, plots and GPU sparklines."""
