"""Layer 2: windowed features, RED metrics, call edges and log patterns from the raw telemetry topics."""
