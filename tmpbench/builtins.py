"""Built-in registry entries, registered lazily as "module:attr" strings.

Importing this module imports nothing heavy: each entry is imported on first lookup. Outside
packages add their own entries through the entry-point groups ``tmpbench.models``,
``tmpbench.pruners``, ``tmpbench.suites`` and ``tmpbench.metrics``.
"""

from tmpbench.registry import METRICS, MODELS, PRUNERS, SUITES  # noqa: F401

# --- suites ----------------------------------------------------------------------------------

# --- models ----------------------------------------------------------------------------------

# --- pruners ---------------------------------------------------------------------------------

# --- metrics ---------------------------------------------------------------------------------
