"""The HTTP doors: REST, the live event streams, MCP for agents and people, and the board's files."""
