"""The runbook knowledge base: versioned YAML runbooks, validated at load."""
