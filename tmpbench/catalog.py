"""The project's registries and their built-in entries, registered lazily as "module:attr" strings.

Importing this module imports nothing heavy: each entry is imported on first lookup, so
``tmpbench --help`` stays fast. Outside packages add their own entries through the entry-point
groups ``tmpbench.models``, ``tmpbench.pruners``, ``tmpbench.suites``, ``tmpbench.metrics`` and
``tmpbench.scorers``.
"""

from tmpbench.registry import Registry

MODELS: Registry = Registry("model")  # name -> tmpbench.models.base.ModelEntry
PRUNERS: Registry = Registry("pruner")  # name -> pruners.base.Pruner subclass
SUITES: Registry = Registry("suite")  # name -> path of a suite YAML (tmpbench.suites.core.SuiteSpec)
METRICS: Registry = Registry("metric")  # name -> torchmetrics Metric class
SCORERS: Registry = Registry("scorer")  # metric name -> factory(suite, *, mode, device, judge) -> tmpbench.scoring.base scorer

# --- suites ----------------------------------------------------------------------------------
# each entry is the path of a suite YAML (suites/*.yaml); tmpbench.suites.core.load_suite parses it
SUITES.register_lazy("shapes-t2i", "suites:SHAPES_T2I")
SUITES.register_lazy("shapes-edit", "suites:SHAPES_EDIT")
SUITES.register_lazy("geneval", "suites:GENEVAL")
SUITES.register_lazy("oneig", "suites:ONEIG")
SUITES.register_lazy("oneig-zh", "suites:ONEIG_ZH")
SUITES.register_lazy("imgedit", "suites:IMGEDIT")
SUITES.register_lazy("gedit", "suites:GEDIT")
SUITES.register_lazy("gedit-cn", "suites:GEDIT_CN")

# --- models ----------------------------------------------------------------------------------
MODELS.register_lazy("zimage", "tmpbench.models.zimage:ZIMAGE_ENTRY")
MODELS.register_lazy("flux", "tmpbench.models.flux:FLUX_ENTRY")
MODELS.register_lazy("hunyuanimage3", "tmpbench.models.hunyuan:HUNYUANIMAGE3_ENTRY")
MODELS.register_lazy("hunyuanimage3-instruct", "tmpbench.models.hunyuan:HUNYUANIMAGE3_INSTRUCT_ENTRY")
MODELS.register_lazy("tiny-dit", "tmpbench.models.reference.entries:TINY_DIT_ENTRY")
MODELS.register_lazy("tiny-moe", "tmpbench.models.reference.entries:TINY_MOE_ENTRY")
MODELS.register_lazy("tiny-hy3", "tmpbench.models.reference.entries:TINY_HY3_ENTRY")

# --- pruners ---------------------------------------------------------------------------------
# Pruner classes (pruners/base.py: plan(model, tree, budget, calibration) -> Plan); TMP first
PRUNERS.register_lazy("tmp", "pruners.tmp:TMPPruner")
PRUNERS.register_lazy("random", "pruners.random_pruner:RandomPruner")
PRUNERS.register_lazy("magnitude", "pruners.magnitude:MagnitudePruner")
PRUNERS.register_lazy("taylor", "pruners.taylor:TaylorPruner")
PRUNERS.register_lazy("block-influence", "pruners.block_influence:BlockInfluencePruner")
PRUNERS.register_lazy("late-drop", "pruners.late_drop:LateDropPruner")
PRUNERS.register_lazy("expert-frequency", "pruners.expert_frequency:ExpertFrequencyPruner")
PRUNERS.register_lazy("reap", "pruners.reap:ReapPruner")
PRUNERS.register_lazy("best-of-n", "pruners.search_baseline:BestOfNPruner")

# --- metrics ---------------------------------------------------------------------------------
# torchmetrics Metric classes; each has available() -> (bool, reason) and identity() -> dict
METRICS.register_lazy("fid", "tmpbench.metrics.fid:FrechetDistance")
METRICS.register_lazy("kid", "tmpbench.metrics.fid:KernelDistance")
METRICS.register_lazy("clipscore", "tmpbench.metrics.clip_score:CLIPScore")
METRICS.register_lazy("clip_i", "tmpbench.metrics.clip_score:CLIPImageSimilarity")
METRICS.register_lazy("clip_t", "tmpbench.metrics.clip_score:CLIPTextSimilarity")
METRICS.register_lazy("clip_dir", "tmpbench.metrics.clip_score:DirectionalCLIPSimilarity")
METRICS.register_lazy("psnr_teacher", "tmpbench.metrics.fidelity:TeacherPSNR")
METRICS.register_lazy("ssim_teacher", "tmpbench.metrics.fidelity:TeacherSSIM")
METRICS.register_lazy("lpips_teacher", "tmpbench.metrics.fidelity:TeacherLPIPS")

# --- scorers ---------------------------------------------------------------------------------
# what `tmpbench run` and `tmpbench score` compute per metric name: a factory
# (suite, *, mode=None, device="cpu", judge=None) -> SampleScorer | SetScorer (tmpbench/scoring/base.py)
SCORERS.register_lazy("geneval", "tmpbench.scoring.dispatch:geneval_scorer")
SCORERS.register_lazy("edit_success", "tmpbench.scoring.shapes:ShapesEditSuccess.for_suite")
SCORERS.register_lazy("preservation_psnr", "tmpbench.scoring.shapes:ShapesPreservationPSNR.for_suite")
SCORERS.register_lazy("preservation_l1", "tmpbench.scoring.shapes:ShapesPreservationL1.for_suite")
SCORERS.register_lazy("fid", "tmpbench.scoring.fid:fid_scorer")
SCORERS.register_lazy("kid", "tmpbench.scoring.fid:kid_scorer")
SCORERS.register_lazy("clipscore", "tmpbench.scoring.clip:ClipScoreScorer.for_suite")
SCORERS.register_lazy("clip_i", "tmpbench.scoring.clip:ClipImageScorer.for_suite")
SCORERS.register_lazy("clip_t", "tmpbench.scoring.clip:ClipTextScorer.for_suite")
SCORERS.register_lazy("clip_dir", "tmpbench.scoring.clip:ClipDirectionalScorer.for_suite")
SCORERS.register_lazy("psnr_teacher", "tmpbench.scoring.fidelity:TeacherPSNRScorer.for_suite")
SCORERS.register_lazy("ssim_teacher", "tmpbench.scoring.fidelity:TeacherSSIMScorer.for_suite")
SCORERS.register_lazy("lpips_teacher", "tmpbench.scoring.fidelity:TeacherLPIPSScorer.for_suite")
SCORERS.register_lazy("oneig_alignment", "tmpbench.scoring.oneig.scorer:oneig_alignment")
SCORERS.register_lazy("oneig_text", "tmpbench.scoring.oneig.scorer:oneig_text")
SCORERS.register_lazy("oneig_reasoning", "tmpbench.scoring.oneig.scorer:oneig_reasoning")
SCORERS.register_lazy("oneig_style", "tmpbench.scoring.oneig.scorer:oneig_style")
SCORERS.register_lazy("oneig_diversity", "tmpbench.scoring.oneig.scorer:oneig_diversity")
