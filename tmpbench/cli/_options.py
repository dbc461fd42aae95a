"""Typer options that several commands share, defined once so that their flag, default and help
text cannot drift apart between commands.

Each function returns a fresh ``typer.Option`` to use as a parameter default::

    def generate(steps: int = opt.steps(), size: int = opt.size()) -> None: ...

Options whose help differs between commands (``--limit`` of ``generate``, ``--seeds`` of
``sweep``) stay written out where they are used.
"""

from __future__ import annotations

from typing import Any

import typer


def suite() -> Any:
    return typer.Option(..., "--suite", help="Suite name (`tmpbench suites list`) or a suite YAML.")


def seeds() -> Any:
    return typer.Option(None, "--seeds", help="Samples per prompt (default 1; OneIG 4).")


def limit_evaluated() -> Any:
    return typer.Option(None, "--limit", help="Evaluate the first K items (round-robin over categories).")


def batch_size() -> Any:
    return typer.Option(None, "--batch-size", help="Images per generator call (default: the model's; when "
                        "resuming, the run's).")


def steps() -> Any:
    return typer.Option(None, "--steps", help="Sampler steps (default: the model's).")


def guidance() -> Any:
    return typer.Option(None, "--guidance", help="Guidance scale (default: the model's).")


def size() -> Any:
    return typer.Option(None, "--size", help="Image side in pixels (default: the model's).")


def model_path() -> Any:
    return typer.Option(None, "--model-path", help="Local weights directory for the model (for a pruned spec or "
                        "--model DIR: the unpruned base, i.e. the teacher).")


def source() -> Any:
    return typer.Option(None, "--source", help="The suite's source file or folder, if it needs one.")


def image_root() -> Any:
    return typer.Option(None, "--image-root", help="An edit suite's folder of input images (default: the suite YAML's).")


def device() -> Any:
    return typer.Option(None, "--device", help="Torch device (default: cuda if available, else cpu).")


def offload() -> Any:
    return typer.Option("none", "--offload",
                        help="Offload while generating: none, model (one component at a time on the device), group "
                             "(the blocks streamed one at a time) or expert (MoE: the routed experts streamed); "
                             "`tmpbench fit` says which one fits a GPU.")


def quiet_output() -> Any:
    return typer.Option(False, "--quiet", help="No progress output.")


def calibration_mix() -> Any:
    return typer.Option(None, "--calibration-mix",
                        help="Calibration task mix, e.g. t2i=0.5,edit=0.5 (default: the model's; edit-capable "
                             "references mix in shapes-edit instructions). t2i=1 calibrates on prompts only.")


def calib_draw() -> Any:
    return typer.Option(0, "--calib-draw", min=0,
                        help="Which calibration items: draw 0 (default) takes the first of the calib split, draw k the "
                             "next disjoint set of the same size (to measure how much a plan depends on its data).")


def split() -> Any:
    return typer.Option("test", "--split", help="Evaluation split of the suite: test (default), dev, calib, or all "
                        "(every item, as before splits). Calibration and recovery always draw from calib.")
