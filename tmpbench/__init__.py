"""tmpbench: a benchmark harness for pruning large image-generation models.

Data flows one way: suite -> generator -> images on disk -> scorers -> results JSON -> reports.
Pruning sits beside it: model -> unit tree -> pruner.plan(budget) -> Plan -> apply -> recover -> save.
"""

__version__ = "0.1.0"

from tmpbench.errors import TmpbenchError

__all__ = ["TmpbenchError", "__version__"]
