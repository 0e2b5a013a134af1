"""Demo world: in-process mail servers and simulated municipalities."""
