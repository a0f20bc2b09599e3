"""The tests: a package, so that no helper module shadows one of the standard library."""
