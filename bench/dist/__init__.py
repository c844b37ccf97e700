"""Everything multi-process: rank/world helpers, DDP training setup, sharded inference and its merge."""
