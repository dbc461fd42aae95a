"""tmpbench.models.reference."""
