"""Quality verdicts against seed noise (issue 24): A/A compares on disjoint seed sets of one commit, and
planted quality faults compared seed-paired with the baseline.

    python scripts/quality_validation.py run SUITE --seeds 0-47 --out DIR [--fault half_lr]
    python scripts/quality_validation.py analyze DIR [--group 3] [--alpha 0.05]

`run` runs SUITE (its name, strategies and budget unchanged: only its seed list is replaced) into
DIR/<condition>/ (condition: `baseline`, or the fault's name), resuming what is stored. A fault is
injected from outside the harness by scripts/faults/site on PYTHONPATH (BENCH_FAULTS=<fault>):
`half_lr` (every optimizer step at half its learning rate), `fewer_steps` (learning stops after 60% of
the steps), `wrong_completions` (10% of the learned task's training completions replaced by a wrong
answer). The spec and run ids do not change, so `bench compare` pairs fault and baseline by seed.

`analyze` splits the baseline seeds into groups of --group and compares group i with group i+1 to i+5
(same commit, disjoint seeds: every gating verdict is a false alarm), then each fault
condition's groups with the baseline's runs of the same seeds (seed-paired), and writes
DIR/summary.json and DIR/summary.md: the suite-level false-alarm rate, per-test p-value calibration,
detection per fault, and detection against effect size (effect beyond the stated MDE or not).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FAULTS = ("half_lr", "fewer_steps", "wrong_completions")
# what each fault should move, per strategy (the metrics a reader looks at)
KEY_METRICS = ("accuracy.{task}", "gain.{task}", "forgetting.mean", "train.final_loss")


def seeds(text: str) -> list[int]:
    found: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        found += list(range(int(low), int(high or low) + 1))
    return found


def run(suite: Path, chosen: list[int], out: Path, fault: str | None) -> int:
    condition = fault or "baseline"
    data = yaml.safe_load(suite.read_text(encoding="utf-8"))
    data["seeds"] = chosen
    copy = out / "suites" / f"{condition}.yaml"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    env = dict(os.environ)
    if fault:
        env["BENCH_FAULTS"] = fault
        site = str(REPO / "scripts" / "faults" / "site")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [site, str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "bench.cli", "run", str(copy), "--results", str(out / condition)]
    return subprocess.run([*command, "--no-report"], cwd=REPO, env=env).returncode


def _groups(records: list, size: int) -> list[list]:
    by_seed = sorted({r.seed for r in records})
    chunks = [by_seed[i : i + size] for i in range(0, len(by_seed) - size + 1, size)]
    return [[r for r in records if r.seed in chunk] for chunk in chunks]


def _rows(result, task: str) -> list[dict]:
    keys = {pattern.format(task=task) for pattern in KEY_METRICS}
    rows = []
    for change in result.changes:
        if change.metric in keys or change.regression:
            rows.append(
                {
                    "strategy": change.strategy,
                    "metric": change.metric,
                    "verdict": change.verdict,
                    "gating": change.gating,
                    "effect": change.effect,
                    "mde": change.mde,
                    "p": change.p_value,
                    "q": change.q_value,
                    "test": change.test,
                    "note": change.note,
                }
            )
    return rows


def analyze(out: Path, size: int, alpha: float) -> dict:
    from bench.analysis.compare import compare_records
    from bench.records.store import load_records

    baseline = list(load_records(out / "baseline"))
    task = baseline[0].spec["task"]["name"]
    groups = _groups(baseline, size)
    summary: dict = {"group": size, "alpha": alpha, "aa": [], "faults": {}}
    p_values, worse_p = [], []
    for gap in (1, 2, 3, 4, 5):
        for i in range(len(groups) - gap):
            result = compare_records(groups[i], groups[i + gap], alpha=alpha)
            seeds_a = sorted({r.seed for r in groups[i]})
            seeds_b = sorted({r.seed for r in groups[i + gap]})
            tested = [c for c in result.changes if c.gating and c.p_value is not None]
            p_values += [c.p_value for c in tested]
            worse_p += [c.p_value for c in tested if _worse_way(c)]
            summary["aa"].append(
                {
                    "baseline_seeds": seeds_a,
                    "candidate_seeds": seeds_b,
                    "failed": result.failed,
                    "regressions": [f"{c.strategy}: {c.metric}" for c in result.regressions],
                    "tests": sum(1 for c in result.changes if c.gating and c.p_value is not None),
                }
            )
    summary["aa_tests"] = len(p_values)
    summary["aa_tests_worse_p_below_alpha"] = sum(p <= alpha for p in worse_p)
    by_seed = {}
    for record in baseline:
        by_seed.setdefault(record.seed, []).append(record)
    for fault in FAULTS:
        if not (out / fault).is_dir():
            continue
        compares = []
        for group in _groups(list(load_records(out / fault)), size):
            chosen = sorted({r.seed for r in group})
            if not all(seed in by_seed for seed in chosen):
                continue
            base = [r for seed in chosen for r in by_seed[seed]]
            result = compare_records(base, group, alpha=alpha)
            compares.append({"seeds": chosen, "failed": result.failed, "rows": _rows(result, task)})
        summary["faults"][fault] = compares
    return summary


def _worse_way(change) -> bool:
    moved = change.effect if change.effect is not None else (change.candidate or 0) - (change.baseline or 0)
    return moved != 0 and (moved > 0) != change.higher_is_better


def effect_table(summary: dict) -> list[dict]:
    """Per fault, strategy and key metric: the fault's effect (the mean over its compares, the best
    estimate of the true effect), the mean stated MDE, and in how many compares the row gated."""
    rows: dict[tuple[str, str, str], dict] = {}
    for fault, compares in summary["faults"].items():
        for compare in compares:
            for row in compare["rows"]:
                if row["effect"] is None or row["mde"] is None:
                    continue
                entry = rows.setdefault((fault, row["strategy"], row["metric"]), {"effects": [], "mdes": [], "hits": 0})
                entry["effects"].append(row["effect"])
                entry["mdes"].append(row["mde"])
                entry["hits"] += row["verdict"] == "worse" and row["gating"]
    table = []
    for (fault, strategy, metric), entry in sorted(rows.items()):
        effect = sum(entry["effects"]) / len(entry["effects"])
        mde = sum(entry["mdes"]) / len(entry["mdes"])
        worse_way = (effect < 0) == _higher(metric)
        table.append(
            {
                "fault": fault,
                "strategy": strategy,
                "metric": metric,
                "effect": effect,
                "mde": mde,
                "beyond_mde": worse_way and abs(effect) > mde,
                "gated": entry["hits"],
                "compares": len(entry["effects"]),
            }
        )
    return table


def _higher(metric: str) -> bool:
    return metric != "train.final_loss"


def markdown(summary: dict) -> str:
    aa = summary["aa"]
    alarms = sum(c["failed"] for c in aa)
    lines = [
        f"# Quality verdicts against seed noise ({summary['group']} seeds a side, alpha {summary['alpha']})",
        "",
        f"A/A, same commit, disjoint seeds: **{alarms} of {len(aa)} compares** exit 1 (suite-level false alarms).",
        f"Single tests before family-wise control: {summary['aa_tests_worse_p_below_alpha']} of"
        f" {summary['aa_tests']} gating tests pointed worse with one-sided p <= {summary['alpha']} (a calibrated"
        f" test: {summary['alpha']:.0%} of them).",
        "",
        "| fault | compares | exit 1 (detected) | rows whose effect is beyond the MDE: gated | other rows: gated |",
        "|---|---|---|---|---|",
    ]
    table = effect_table(summary)
    for fault, compares in summary["faults"].items():
        hit = sum(c["failed"] for c in compares)
        beyond = [row for row in table if row["fault"] == fault and row["beyond_mde"]]
        within = [row for row in table if row["fault"] == fault and not row["beyond_mde"]]
        lines.append(
            f"| {fault} | {len(compares)} | {hit} of {len(compares)} | {sum(r['gated'] for r in beyond)} of"
            f" {sum(r['compares'] for r in beyond)} | {sum(r['gated'] for r in within)} of"
            f" {sum(r['compares'] for r in within)} |"
        )
    lines += [
        "",
        "Detection against effect size: each fault's effect (mean over its compares; points, or % for the"
        " loss) against the stated MDE (95% power at alpha/m), and the compares in which the row gated:",
        "",
        "| fault | strategy | metric | effect | stated MDE | beyond the MDE | gated |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        loss = row["metric"] == "train.final_loss"
        effect = f"{math.expm1(row['effect']):+.0%}" if loss else f"{100 * row['effect']:+.1f}"
        mde = f"{math.expm1(row['mde']):.0%}" if loss else f"{100 * row['mde']:.1f}"
        lines.append(
            f"| {row['fault']} | {row['strategy']} | {row['metric']} | {effect} | {mde} |"
            f" {'yes' if row['beyond_mde'] else 'no'} | {row['gated']} of {row['compares']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run")
    runner.add_argument("suite", type=Path)
    runner.add_argument("--seeds", type=seeds, required=True)
    runner.add_argument("--out", type=Path, required=True)
    runner.add_argument("--fault", choices=FAULTS)
    analyzer = commands.add_parser("analyze")
    analyzer.add_argument("out", type=Path)
    analyzer.add_argument("--group", type=int, default=3)
    analyzer.add_argument("--alpha", type=float, default=0.05)
    analyzer.add_argument("--name", default="summary")
    args = parser.parse_args()
    if args.command == "run":
        return run(args.suite, args.seeds, args.out, args.fault)
    summary = analyze(args.out, args.group, args.alpha)
    (args.out / f"{args.name}.json").write_text(json.dumps(summary, indent=1))
    text = markdown(summary)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
