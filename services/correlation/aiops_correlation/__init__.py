"""Layer 3b: correlation of alerts, anomalies, predictions and changes into explained incidents."""
