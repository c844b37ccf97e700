"""Foundations every other part uses: UserError with did-you-mean, atomic file writes, logging, provenance."""
