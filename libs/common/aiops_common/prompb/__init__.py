"""The Prometheus remote write messages, 1.0 (``prometheus.WriteRequest``) and 2.0 (``io.prometheus.write.v2.Request``).

Compiled from the ``.proto`` files in this folder by ``make protos``; the
``*_pb2.py`` modules are generated, never edited by hand.
"""
