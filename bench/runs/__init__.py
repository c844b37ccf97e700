"""One run: spec -> resolved run -> (train) -> predictions -> metrics -> record; grids and resume."""
