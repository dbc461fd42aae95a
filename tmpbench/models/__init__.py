"""The model layer: generators behind one interface, model specs, and parameter/FLOP counting.

* ``base``: the :class:`Generator` interface, :class:`ModelEntry` and batch validation;
* ``weights``: where an entry's weights come from, and the one-line error when they cannot be had;
* ``diffusers_generator``: the base of the diffusers adapters, ``zimage`` and ``flux``;
* ``hunyuan``: HunyuanImage-3.0 (transformers remote code) and its offline stand-in; ``moe``: one
  view over the MoE block layouts;
* ``spec``: ``NAME[-SIZE]`` / folder specs; ``counting``: params and FLOPs, also on the meta device;
* ``reference``: the tiny ShapesWorld reference models and their registry entries.

Importing this package is cheap (no torch); adapters import diffusers/transformers when used.
Loading a spec (which may name a pruned folder) is :func:`tmpbench.loading.load_model`.
"""

from tmpbench.models.base import Generator, ModelEntry, check_batch
from tmpbench.models.spec import ModelSpec, parse_spec

__all__ = ["Generator", "ModelEntry", "ModelSpec", "check_batch", "parse_spec"]
