"""The tiny ShapesWorld reference models (``tiny-dit``, ``tiny-moe``): their architectures, the
components they are built from and their registry entries. Training (:mod:`tmpbench.training`)
imports them; they know nothing of training.
"""
