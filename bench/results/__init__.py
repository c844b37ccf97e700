"""Records (what a finished run is), the run store (folders, predictions, claims) and comparisons."""
