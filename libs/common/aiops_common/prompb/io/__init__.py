"""Namespace of the generated remote write 2.0 messages (proto package io.prometheus.write.v2)."""
