"""The correlation service's Faust agents, one per module (I/O: topics and stores)."""
