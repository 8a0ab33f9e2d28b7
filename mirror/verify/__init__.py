"""mirror verify: checks the published tree against state and repairs it."""
