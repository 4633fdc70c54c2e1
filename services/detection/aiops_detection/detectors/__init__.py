"""Detection's pure logic: detectors, the cascade, calibration, sensitivity, training and NAB scoring; no I/O."""
