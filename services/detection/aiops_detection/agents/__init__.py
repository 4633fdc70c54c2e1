"""Detection's Faust agents and timers: the I/O side, one module per agent, wired by ``worker.install``."""
