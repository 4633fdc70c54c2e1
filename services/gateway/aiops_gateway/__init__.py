"""The gateway: one REST API (query, configuration, automation), authentication, rate limits and the operator UI."""
