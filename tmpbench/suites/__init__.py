"""tmpbench.suites."""
