"""The one writer of pipeline state: the orchestrator, its jobs, and the orders every door calls."""
