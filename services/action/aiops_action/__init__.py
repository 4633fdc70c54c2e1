"""Layer 4: runbooks behind approval, their executors, verification and rollback, notifications."""
