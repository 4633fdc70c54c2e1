"""The gateway's commands, one module per group."""
