"""One module per ``d4e`` subcommand (see :mod:`d4e.cli`)."""
