"""Sharding a run across processes with accelerate (``accelerate launch -m tmpbench run ...``).

Every process loads the model, generates the item *groups* it owns (group ``g`` belongs to
process ``g % num_processes``, see :func:`tmpbench.run.generate.shard_groups`), scores its own samples
and writes its per-sample rows to ``DIR/shards/rank-<r>.jsonl``. After a barrier the main process
merges the rows sorted by ``(item index, sample)`` -- so the merge does not depend on which process
made what -- computes the set-level metrics (FID, bootstrap CIs) and writes ``results.json`` and
``samples.jsonl``. Without accelerate (or with one process) the same code runs with rank 0 of 1.

With several processes each gets ``cpu_count // num_processes`` torch threads unless ``OMP_NUM_THREADS`` is set.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHARD_DIR = "shards"


@dataclass
class ProcessContext:
    """This process's place in the run: ``rank`` of ``world``; ``state`` is accelerate's PartialState."""

    rank: int = 0
    world: int = 1
    state: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wait(self) -> None:
        """Barrier: every process reaches this point before any goes on (no-op for one process)."""
        if self.state is not None and self.world > 1:
            self.state.wait_for_everyone()

    @property
    def device(self) -> str:
        if self.state is not None:
            return str(self.state.device)
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def launched_world_size() -> int:
    """Processes started by ``accelerate launch`` / torchrun (``WORLD_SIZE``), 1 otherwise."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def process_context(device: str | None = None) -> ProcessContext:
    """The context of this process; initialises accelerate's distributed state when launched by it."""
    world = launched_world_size()
    if world == 1:
        ctx = ProcessContext()
    else:
        from accelerate import PartialState

        cpu = device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
        state = PartialState(cpu=cpu)
        ctx = ProcessContext(rank=state.process_index, world=state.num_processes, state=state)
    configure_threads(ctx.world)
    return ctx


def configure_threads(world: int) -> int:
    """Split the CPU cores between processes (``OMP_NUM_THREADS`` wins); returns the thread count."""
    import torch

    if "OMP_NUM_THREADS" in os.environ:
        n = max(1, int(os.environ["OMP_NUM_THREADS"]))
    elif world > 1:
        n = max(1, (os.cpu_count() or 1) // world)
    else:
        return torch.get_num_threads()  # one process: torch's own default
    torch.set_num_threads(n)
    return n


def shard_file(out: Path, rank: int) -> Path:
    return Path(out) / SHARD_DIR / f"rank-{rank}.jsonl"


def write_shard_rows(out: Path, rank: int, rows: list[dict]) -> Path:
    """Write this process's per-sample rows atomically (one JSON object per line)."""
    from tmpbench.provenance import json_safe

    path = shard_file(out, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in rows))
    os.replace(tmp, path)
    return path


def merge_shard_rows(out: Path, world: int) -> list[dict]:
    """Every process's rows, sorted by ``(index, sample)``; refuses a missing shard or duplicates."""
    from tmpbench.errors import TmpbenchError

    rows: list[dict] = []
    for rank in range(world):
        path = shard_file(out, rank)
        if not path.is_file():
            raise TmpbenchError(f"process {rank} wrote no results ({path}); did it fail? see its output above")
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: (r["index"], r["sample"]))
    keys = [(r["index"], r["sample"]) for r in rows]
    if len(set(keys)) != len(keys):
        raise TmpbenchError(f"shard files under {Path(out) / SHARD_DIR} overlap; delete the folder and rerun")
    return rows


def clear_shards(out: Path) -> None:
    """Remove stale per-process files of an earlier run (main process, before generation)."""
    d = Path(out) / SHARD_DIR
    if d.is_dir():
        for p in d.glob("rank-*.jsonl"):
            p.unlink()
