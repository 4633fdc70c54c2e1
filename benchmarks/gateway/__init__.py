"""The gateway under load: incidents list and detail, requests/s and latency percentiles, per document store."""
