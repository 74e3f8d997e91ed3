"""Pure nouns and decision tables: no I/O, no waiting. Every other package builds on these."""
