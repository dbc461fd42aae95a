"""The model layer: generators behind one interface, model specs, and parameter/FLOP counting.

Importing this package is cheap (no torch); adapters import diffusers/transformers when used.
"""

from tmpbench.models.base import Generator, ModelEntry, check_batch, load_model
from tmpbench.models.spec import ModelSpec, parse_spec

__all__ = ["Generator", "ModelEntry", "ModelSpec", "check_batch", "load_model", "parse_spec"]
