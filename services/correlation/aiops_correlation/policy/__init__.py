"""The correlation service's pure logic: suppression (Dynamic-X-Y) and clustering, no I/O."""
