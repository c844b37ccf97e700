"""Model families, one module each; every module defines FAMILIES (bench.models.registry reads them all)."""
