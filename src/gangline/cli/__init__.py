"""The command line: the edge where settings are read and errors become exit codes."""
