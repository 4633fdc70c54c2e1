"""Layer 3c: root-cause analysis of incidents, ranked by P(cause | evidence) with the evidence behind each cause."""
