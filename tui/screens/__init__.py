"""One screen per wizard step, plus the help screen and the confirm dialog."""
