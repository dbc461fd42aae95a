"""The model layer: generators behind one interface, model specs, and parameter/FLOP counting.

Importing this package is cheap (no torch); adapters import diffusers/transformers when used.
Loading a spec (which may name a pruned folder) is :func:`tmpbench.loading.load_model`.
"""

from tmpbench.models.base import Generator, ModelEntry, check_batch
from tmpbench.models.spec import ModelSpec, parse_spec

__all__ = ["Generator", "ModelEntry", "ModelSpec", "check_batch", "parse_spec"]
