"""Encoders with weights: the networks metrics and judges embed images (and texts) with.

Each module loads one family from local files only (never a download), raises one line naming the
missing file or package, and answers ``identity()`` with its library version and weights checksums.

* :mod:`~tmpbench.metrics.backbones.openclip` -- open_clip: tmpbench's default CLIP checkpoint
  (CLIPScore, the ``clip`` feature mode) and local ``open_clip_config.json`` folders;
* :mod:`~tmpbench.metrics.backbones.hf_clip` -- transformers CLIP folders (full model or vision tower);
* :mod:`~tmpbench.metrics.backbones.clip_folder` -- pick open_clip or transformers by what a folder holds;
* :mod:`~tmpbench.metrics.backbones.llm2clip` -- LLM2CLIP (OneIG's reasoning judge);
* :mod:`~tmpbench.metrics.backbones.csd` -- CSD style descriptors rebuilt on open_clip (OneIG style);
* :mod:`~tmpbench.metrics.backbones.style_encoder` -- OneIG's StyleEncoder (OneIG style);
* :mod:`~tmpbench.metrics.backbones.dreamsim_ensemble` -- DreamSim (OneIG diversity);
* :mod:`~tmpbench.metrics.backbones.inception` -- clean-fid's Inception-V3 (the ``inception`` feature mode);
* :mod:`~tmpbench.metrics.backbones.shapes_net` -- the ShapesWorld feature CNN (the ``shapes`` feature mode);
* :mod:`~tmpbench.metrics.backbones.files` -- weight-file listing, checksums and one-line load errors.
"""
