import subprocess
import sys

from bench.plan import plan
from bench.suite import parse_suite
from tests.conftest import REPO, fast_suite


def ids(data: dict) -> dict[tuple[str, int], str]:
    return {(spec.label, spec.seed): spec.run_id for spec in plan(parse_suite(data))}


def test_one_run_per_strategy_and_seed_in_seed_major_order():
    specs = plan(parse_suite(fast_suite("s", ["full", "lora"], seeds=[3, 4])))
    assert [(s.label, s.seed) for s in specs] == [("full", 3), ("lora", 3), ("full", 4), ("lora", 4)]
    assert len({s.run_id for s in specs}) == 4


def test_run_id_is_stable_across_processes():
    data = fast_suite("s", ["full", "lora"])
    code = (
        "from bench.plan import plan; from bench.suite import parse_suite; from tests.conftest import fast_suite;"
        "print(' '.join(s.run_id for s in plan(parse_suite(fast_suite('s', ['full', 'lora'])))))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert other.stdout.split() == list(ids(data).values())


def test_changing_one_option_reruns_only_what_it_touches():
    before = ids(fast_suite("s", ["full", "lora"], seeds=[0, 1]))
    after = ids(fast_suite("s", ["full", {"lora": {"r": 4}}], seeds=[0, 1]))
    assert before[("full", 0)] == after[("full", 0)] and before[("full", 1)] == after[("full", 1)]
    assert before[("lora", 0)] != after[("lora", 0)] and before[("lora", 1)] != after[("lora", 1)]


def test_budget_and_task_changes_touch_every_run_but_timeouts_touch_none():
    base = ids(fast_suite("s", ["full", "lora"]))
    assert set(base.values()).isdisjoint(ids(fast_suite("s", ["full", "lora"], budget={"steps": 5})).values())
    relaxed = fast_suite("s", ["full", "lora"], execution={"timeout_s": 9999})
    assert ids(relaxed) == base


def test_a_default_written_out_gives_the_same_id():
    assert ids(fast_suite("s", ["lora"])) == ids(fast_suite("s", [{"lora": {"r": 8, "alpha": 16}}]))


def test_committed_smoke_records_keep_their_run_ids():
    """A field added to the spec must leave existing run ids alone (resume, compare and history key
    on them): the plan of suites/smoke.yaml names exactly the committed records."""
    from pathlib import Path

    from bench.suite import load_suite

    root = Path(__file__).resolve().parents[1]
    committed = {path.stem for path in (root / "results" / "smoke" / "x86_64-2c-cpu").glob("*.json")}
    assert {spec.run_id for spec in plan(load_suite(root / "suites" / "smoke.yaml"))} == committed


def test_every_committed_suites_records_are_in_its_plan():
    """As for smoke, for every suite with committed records: a DPO option added with its default (label_smoothing)
    moved the DPO run ids, and `bench report suites/smollm2-instruct.yaml` quietly dropped the stored DPO run
    (6 ok -> 5 ok), which `bench run` would have trained again."""
    from bench.records.store import load_records
    from bench.suite import load_suite

    checked = 0
    for path in sorted((REPO / "suites").glob("*.yaml")):
        suite = load_suite(path)
        folder = REPO / "results" / suite.name
        if not folder.is_dir():
            continue
        planned = {spec.run_id for spec in plan(suite)}
        stray = sorted(f"{r.label} seed {r.seed}" for r in load_records(folder, []) if r.run_id not in planned)
        assert not stray, f"{path.name}: committed records no longer in its plan: {stray}"
        checked += 1
    assert checked >= 8
