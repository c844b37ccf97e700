"""Research built on the harness (the demo, forgetting, diagnosis, self-training); the core never imports it."""
