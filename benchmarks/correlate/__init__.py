"""The correlation benchmark: a seeded alert storm with true groups, scored through the correlator."""
