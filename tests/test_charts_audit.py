"""The report's charts and front page as an audit found them: a NaN loss erased its whole curve, inf
printed as "infG", "model None" for a config model, latency bars without the whiskers the docs promise,
axes below zero or above 1 and half-step ticks, empty "No data" panels with accuracy off, and the
site's About line naming /tmp/user2/r as "user2/r"."""

from __future__ import annotations

import math
import re
from pathlib import Path

from bench.records.results import LossPoint, Metric, RunResult
from bench.records.store import ResultStore, load_records
from bench.report import charts, html, scales
from bench.report.publish import publish
from tests.synthetic_records import TASK, make_set

ROOT = Path(__file__).resolve().parents[1]
Y_TICK = re.compile(r'text-anchor="end" class="tick">([^<]+)</text>')
X_TICK = re.compile(r'text-anchor="middle" class="tick">([^<]+)</text>')


def _svg(page: str, chart_id: str) -> str:
    found = re.search(rf'<svg id="chart-{chart_id}"[^>]*>(.*?)</svg>', page, re.S)
    assert found, f"chart {chart_id} missing"
    return found.group(1)


def _numbers(pattern: re.Pattern[str], svg: str) -> list[float]:
    return [float(tick.replace(",", "")) for tick in pattern.findall(svg)]


def _with(record: RunResult, **metrics: float) -> RunResult:
    """The record with these metric values (same unit and direction)."""
    changed = {name: record.metrics[name].model_copy(update={"value": value}) for name, value in metrics.items()}
    return record.model_copy(update={"metrics": {**record.metrics, **changed}})


def test_a_nan_loss_breaks_its_curve_and_says_from_which_step():
    records = make_set()
    records[0].loss_curve[:] = [
        LossPoint(step=p.step, loss=math.nan if 31 <= p.step <= 60 else p.loss) for p in records[0].loss_curve
    ]
    svg = _svg(html.render(records), "loss")
    full = re.findall(r'<polyline points="([^"]+)"[^>]*><title>full</title>', svg)
    assert full and "nan" not in svg.lower().replace("not finite", "")  # the finite steps 1-30 still drawn
    assert len(full[0].split()) == 30
    assert "full: loss not finite" in svg and "from step 31" in svg  # legend note and dashed marker


def test_a_line_breaks_at_a_gap_and_resumes():
    svg = charts.lines("l", "t", {"a": [(1, 2.0), (2, 1.5), (3, math.inf), (4, 1.0), (5, 0.8)]}, "step", "loss", {})
    assert len(re.findall(r"<polyline ", svg)) == 2 and "nan" not in svg and "inf" not in svg.split("<title>")[0]
    assert "from step 3" in svg


def test_non_finite_numbers_print_without_a_suffix():
    assert [scales.fmt(v) for v in (math.inf, -math.inf, math.nan, None)] == ["inf", "-inf", "NaN", "n/a"]
    records = [_with(r, **{"train.seconds": math.inf}) if r.label == "full" else r for r in make_set()]
    page = html.render(records)
    assert "infG" not in page and re.search(r">inf( ★)?</td>", page)


def test_a_config_model_is_named_in_the_header():
    model = {"preset": None, "path": None, "hub": None, "gguf": None, "packaged": None, "config": "cfg/smol"}
    records = [r.model_copy(update={"spec": {**r.spec, "model": model}}) for r in make_set()]
    meta = re.search(r'<p class="meta">(.*?)</p>', html.render(records), re.S).group(1)
    assert "model None" not in meta and "model cfg/smol (config" in meta


def test_latency_bars_have_seed_spread_whiskers():
    svg = _svg(html.render(make_set()), "latency-ttft-ms")
    assert svg.count('class="whisker"') == 6  # 2 strategies x p50/p90/p99, 3 seeds each


def test_bar_whiskers_stop_at_zero_for_a_latency():
    svg = charts.bars("b", "t", ["p50"], {"a": [1.0]}, "ms", {}, {"a": [3.0]}, limits=(0.0, None))
    assert min(_numbers(Y_TICK, svg)) == 0


def test_rate_axis_starts_at_zero_and_accuracy_axis_ends_at_one():
    records = [
        _with(r, **{f"accuracy.{TASK}": 1.0 if r.seed < 2 else 0.9, "train.tokens_per_s": 24.0 + 22 * (r.seed - 1)})
        for r in make_set()
    ]
    svg = _svg(html.render(records), "accuracy-throughput")
    assert min(_numbers(X_TICK, svg)) == 0  # tokens/s cannot be negative: was -20
    assert max(_numbers(Y_TICK, svg)) == 1  # accuracy: was 1.05-1.2
    whisker = r'<line x1="([\d.]+)" x2="\1" y1="[\d.]+" y2="([\d.]+)" stroke="#(?!eee)'  # vertical, not the grid
    tops = [float(top) for _, top in re.findall(whisker, svg)]
    assert tops and min(tops) == charts.TOP  # the whisker past 1 is clipped at the plot's top, never above it


def test_loss_steps_are_whole_numbers():
    records = make_set()
    for record in records:
        record.loss_curve[:] = record.loss_curve[:12]
    steps = _numbers(X_TICK, _svg(html.render(records), "loss"))
    assert steps and all(step == int(step) for step in steps), steps  # was 0, 2.5, ..., 12.5


def test_no_empty_panels_when_accuracy_is_off():
    records = list(load_records(ROOT / "results" / "smollm2-gpu-memory"))
    page = html.render(records)
    charts_section = re.search(r'<section id="charts">(.*?)</section>', page, re.S).group(1)
    assert "No data" not in charts_section and "accuracy-memory" not in charts_section
    assert "Accuracy was not measured (measure.accuracy: false)" in charts_section
    assert 'id="chart-loss"' in charts_section and 'id="chart-latency-ttft-ms"' in charts_section


def test_a_chart_without_data_is_a_line_not_a_panel():
    records = [
        r.model_copy(update={"metrics": {**r.metrics, "memory.train.host_peak_mib": Metric.missing("MiB", False, "x")}})
        for r in make_set()
    ]
    page = html.render(records)
    assert "No data" not in page and 'id="chart-accuracy-memory"' not in page
    assert "no strategy has both metrics" in page and 'id="chart-accuracy-throughput"' in page


def test_publish_names_folders_as_given_never_a_mangled_tail(tmp_path, monkeypatch):
    root = tmp_path / "user2" / "r"
    store = ResultStore(root)
    for record in make_set(seeds=(0,)):
        store.write(record)
    about = re.compile(r'id="about">About: this site is rebuilt by <code>([^<]+)</code>')
    monkeypatch.chdir(tmp_path / "user2")
    index = publish(root, tmp_path / "user2" / "site").read_text(encoding="utf-8")
    assert about.search(index).group(1) == "bench publish r --out site"  # inside the current folder: relative

    monkeypatch.chdir(ROOT)
    index = publish(root, tmp_path / "user2" / "site").read_text(encoding="utf-8")
    assert about.search(index).group(1) == "bench publish …/r --out …/site"  # outside: its name, marked as such
    assert "user2/r" not in index and str(tmp_path) not in index and "…/ stands for a folder outside" in index
