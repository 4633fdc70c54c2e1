"""Layer 1: receive telemetry over HTTP and gRPC, normalize it, publish it to the raw topics."""
