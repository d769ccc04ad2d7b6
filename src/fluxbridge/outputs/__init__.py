"""Writing results: atomic file writes with provenance, the CF layout of gridded products."""
