"""The ``aiops`` command line: run the platform, one service, or look at its topics."""
