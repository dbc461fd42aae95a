"""tmpbench.experiments."""
