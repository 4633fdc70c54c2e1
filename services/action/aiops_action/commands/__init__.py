"""The action service's commands, one module per group."""
