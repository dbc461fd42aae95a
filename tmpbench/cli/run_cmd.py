"""``tmpbench run``: generate a suite's images with a model (pruned or not), score them, write results.

Writes ``DIR/results.json`` (schema: tmpbench.run.results), ``DIR/samples.jsonl`` (one line per
sample) and the images in the suite's layout under ``DIR/images``. Rerunning the same command
resumes: completed samples are kept, missing ones generated. Shard across processes with
``accelerate launch --num_processes N -m tmpbench run ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tmpbench.cli import _options as opt


def format_summary(results: dict) -> str:
    """One line per metric: value, 95% CI, or the "not scored" reason."""
    lines = [
        f"suite   {results['suite']['name']} v{results['suite']['version']} ({results['suite']['items']} items, "
        f"{results['generation']['samples']} samples, hash {results['suite']['hash'][:12]})",
        f"model   {results['model']['spec']} ({results['model']['achieved_params']:,} denoiser params)",
    ]
    width = max([len(k) for k in results["metrics"]] + [10])
    for name, m in results["metrics"].items():
        if isinstance(m, str):
            lines.append(f"  {name:<{width}}  {m}")
            continue
        value = "n/a" if m["value"] is None else f"{m['value']:.4f}"
        ci = "" if not m["ci95"] else f"  [{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]"
        lines.append(f"  {name:<{width}}  {value}{ci}  (n={m['n']}, {'higher' if m['higher_is_better'] else 'lower'} is better)")
    eff = results["efficiency"]
    if isinstance(eff, dict):
        lines.append(
            f"  {'efficiency':<{width}}  {eff['latency_per_image_s'] * 1000:.1f} ms/image, {eff['flops_per_call'] / 1e9:.3f} GFLOPs/image, "
            f"peak {eff['peak_memory_bytes'] / 2**20:.0f} MiB ({eff['device_name']}"
            + (f", offload {eff['offload']})" if eff.get("offload", "none") != "none" else ")")
        )
    t = results["timings"]
    lines.append(f"time    total {t['total_s']:.1f}s, generate {t['generate_s']:.1f}s, score {t['score_s']:.1f}s")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        suite: str = opt.suite(),
        model: str = typer.Option(..., "--model", help="Model spec: NAME, NAME-SIZE (pruned, e.g. tiny-dit-50%), or a directory."),
        out: Path = typer.Option(Path("runs/latest"), "--out", help="Output folder (resumes when it holds the same run)."),
        pruner: str = typer.Option(None, "--pruner", help="Pruner for a spec with a size (default tmp)."),
        seeds: int = opt.seeds(),
        limit: int = opt.limit_evaluated(),
        split: str = opt.split(),
        batch_size: int | None = opt.batch_size(),
        steps: int = opt.steps(),
        guidance: float = opt.guidance(),
        size: int = opt.size(),
        model_path: str = opt.model_path(),
        source: str = opt.source(),
        image_root: str = opt.image_root(),
        metrics: str = typer.Option(None, "--metrics", help="Comma-separated metrics, e.g. geneval,fid:shapes (default: the suite's)."),
        device: str = opt.device(),
        offload: str = opt.offload(),
        recover_steps: int = typer.Option(0, "--recover-steps", help="Recovery fine-tuning steps after pruning."),
        prune_cache: Path = typer.Option(None, "--prune-cache", help="Pruned-model cache folder (default DIR/pruned-cache)."),
        as_json: bool = typer.Option(False, "--json", help="Print results.json instead of the summary."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Generate, score and write DIR/results.json + DIR/samples.jsonl (resumable; accelerate-shardable)."""
        from tmpbench.run.pipeline import RunConfig, run_benchmark

        cfg = RunConfig(
            suite=suite, model=model, out=out, pruner=pruner, seeds=seeds, limit=limit, split=split, batch_size=batch_size,
            steps=steps, guidance=guidance, size=size, model_path=model_path, source=source, image_root=image_root, metrics=metrics,
            device=device, offload=offload, recover_steps=recover_steps, prune_cache=prune_cache, progress=not quiet,
        )
        results = run_benchmark(cfg)
        if results is None:  # a non-main accelerate process: the main one reports
            return
        typer.echo(json.dumps(results, indent=2) if as_json else format_summary(results))
        if not as_json:
            typer.echo(f"wrote {Path(out) / 'results.json'} and {Path(out) / 'samples.jsonl'}")
