"""The correlation service's ``aiops`` command groups, one module per group."""
