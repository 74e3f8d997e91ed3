"""gangline: a story-driven development server that runs coding agents on work items."""

__version__ = "0.1.0"
