"""One :class:`Layout` per model family: its unit tree, surgery, mask hook points and unit weights.

A new family is one new file here (a :class:`~tmpbench.pruning.layouts.base.Layout` subclass and a
``LAYOUT`` instance) plus its line in :data:`LAYOUTS`. :func:`tmpbench.pruning.families.layout` is the
one place that picks a model's layout.
"""

from tmpbench.pruning.layouts.base import Layout
from tmpbench.pruning.layouts.flux import LAYOUT as FLUX_MMDIT
from tmpbench.pruning.layouts.hunyuan_decoder import LAYOUT as HUNYUAN_DECODER
from tmpbench.pruning.layouts.zimage_dit import LAYOUT as ZIMAGE_DIT

#: tried in order; the first whose ``matches`` accepts the model wins
LAYOUTS: tuple[Layout, ...] = (HUNYUAN_DECODER, ZIMAGE_DIT, FLUX_MMDIT)

__all__ = ["FLUX_MMDIT", "HUNYUAN_DECODER", "LAYOUTS", "Layout", "ZIMAGE_DIT"]
