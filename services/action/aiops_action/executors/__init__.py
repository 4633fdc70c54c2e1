"""Executors of runbook steps, chosen by kind: Kubernetes, HTTP, sandboxed scripts; each with a dry run."""
