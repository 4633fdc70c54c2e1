"""Bad-actor tests: one package, so the demo platform they share stops when the last of them ends."""
