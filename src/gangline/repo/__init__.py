"""git and the project's gates: worktrees, squash merges, the base-branch guard."""
