"""Training engines: each trains members (runs of one shape) and reports epochs."""
