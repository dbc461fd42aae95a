"""TMP against the best baseline, per reference model and budget, from finished sweep folders.

For every sweep folder (``tmpbench sweep --pruners all``) and budget, the baseline with the highest
point estimate of each metric on the evaluated split is "the best baseline" -- picked on the same
items it is then tested on, a choice that favours the baseline, not TMP. Its per-sample scores are
paired with TMP's on the same items and seeds (McNemar for GenEval's 0/1 correctness, the paired
bootstrap for PSNR to the teacher), and Holm's correction runs across every comparison of one metric.
A Holm-adjusted p of 0.05 or more is a tie. Each row also gives both runs' achieved budgets and
pruning compute (denoiser forward-equivalents / backward passes, seconds).

    python benchmarks/tmp_vs_best.py runs/sweep-tiny-dit runs/sweep-tiny-moe runs/sweep-tiny-hy3 \
        --budgets 25%,50% --metrics geneval,psnr_teacher --out reports/evidence/tmp-vs-best.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._record import append_table  # noqa: E402
from tmpbench.report.paired import fmt, paired, score, verdict  # noqa: E402
from tmpbench.report.stats import format_p, holm  # noqa: E402
from tmpbench.report.tables import check_held_out, format_cost, load_run, markdown, recover_steps  # noqa: E402


def best_rows(folders: list[Path], budgets: list[str], metric: str, exclude: tuple[str, ...] = ()) -> tuple[list[dict], list[dict]]:
    rows, records = [], []
    for folder in folders:
        runs = [load_run(p) for p in sorted(folder.iterdir()) if (p / "results.json").is_file()]  # finished runs
        check_held_out(runs, "tmp_vs_best")
        for budget in budgets:
            here = [r for r in runs if not r.is_teacher and r.budget == budget and not r.settings and recover_steps(r) == 0
                    and r.metric_values(metric)]
            tmp = next((r for r in here if r.pruner == "tmp"), None)
            others = [r for r in here if r.pruner != "tmp" and r.pruner not in exclude]
            if tmp is None or not others:
                continue
            higher = bool(tmp.results["metrics"][metric]["higher_is_better"])
            scored = {r.pruner: score(r, metric) for r in others}
            best = max(others, key=lambda r: scored[r.pruner][0] if higher else -scored[r.pruner][0])
            t = paired(tmp, best, metric)
            tp, tci, _ = score(tmp, metric)
            rows.append({"model": tmp.model, "budget": budget, "best baseline": best.pruner, "n": t["n"],
                         "tmp": fmt(tp, tci), "best": fmt(*scored[best.pruner][:2]),
                         "Δ best − tmp [95% CI]": fmt(t["diff"], t["ci"]), "test": t["test"], "p": t["p"], "_t": t,
                         "achieved (tmp / best)": f"{tmp.achieved_ratio:.2%} / {best.achieved_ratio:.2%}",
                         "prune fwd / bwd (tmp)": format_cost(tmp.pruning_cost),
                         "prune fwd / bwd (best)": format_cost(best.pruning_cost),
                         "runner-up": ", ".join(f"{p} {v[0]:.3f}" for p, v in sorted(scored.items(), key=lambda kv: -kv[1][0]
                                                                                      if higher else kv[1][0])[1:3])})
            records.append({"model": tmp.model, "budget": budget, "metric": metric, "tmp_run": str(tmp.path),
                            "best_run": str(best.path), "diff": t["diff"], "ci": t["ci"], "p": t["p"], "n": t["n"],
                            "scores": {p: v[0] for p, v in scored.items()}, "tmp": tp})
    adjusted = holm([r["p"] for r in rows])
    for row, q, rec in zip(rows, adjusted, records):
        t = row.pop("_t")
        row["p"] = format_p(row['p'])
        row["p (Holm)"] = format_p(q)
        row["verdict"] = verdict(t, "tmp", row["best baseline"], q)
        rec["p_holm"], rec["verdict"] = q, row["verdict"]
    return rows, records


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--budgets", default="25%,50%")
    ap.add_argument("--metrics", default="geneval,psnr_teacher")
    ap.add_argument("--exclude", default="", help="Baselines left out of the pick, e.g. best-of-n (the non-search baselines).")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import pandas as pd

    for metric in args.metrics.split(","):
        exclude = tuple(x for x in args.exclude.split(",") if x)
        rows, records = best_rows(args.folders, args.budgets.split(","), metric, exclude)
        table = markdown(pd.DataFrame(rows))
        left_out = f" other than {', '.join(exclude)}" if exclude else ""
        caption = (f"TMP against the best baseline{left_out} on {metric} (test split; the best baseline is picked on these items, "
                   f"which favours it); Δ paired on the same items and seeds, Holm across the {len(rows)} comparisons; "
                   "tie when the adjusted p is 0.05 or more.")
        print(f"{caption}\n\n{table}\n")
        if args.out is not None:
            append_table(args.out, [caption, "", table], records, threads=1, argv=argv, metric=metric)


if __name__ == "__main__":
    main()
