"""The action service's Faust agents: matcher (``rca.results``), orchestrator (``approvals``), executor
(``actions``), notifier (``incidents``, ``actions``)."""
