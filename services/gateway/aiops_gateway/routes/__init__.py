"""The API's routes, one module per part: each holds one ``router``."""
