"""One agent CLI in a pseudo-terminal, its output as typed events in a durable log and on a live bus."""
