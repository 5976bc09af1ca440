"""Extending bench with plugins (audit of 2026-12-07, user15): a plugin could replace a built-in strategy under
its name without a word; naming any plugin changed every run's id (a rerun of all, and compare said "spec
changed: plugins"); a plugin that raised or had a syntax error gave a traceback, one missing a dependency
named the dependency, not the plugin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from bench.plan import plan
from bench.registry import Registry
from bench.suite import SuiteError, parse_suite
from tests.conftest import fast_suite


def _module(tmp_path: Path, monkeypatch, name: str, text: str) -> str:
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_a_name_stands_for_one_thing() -> None:
    registry: Registry[object] = Registry("strategy")
    registry.register("lora", "bench.strategies.lora:LoRA")
    with pytest.raises(ValueError, match="strategy 'lora' is already registered; register yours under a name"):
        registry.add("lora", object())
    mine = object()
    registry.add("mine", mine)
    registry.add("mine", mine)  # the same object again (a module imported twice) is no clash
    registry.register("lora", "bench.strategies.lora:LoRA")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("lora", "elsewhere:LoRA")
    registry.register("self", "selfreg:STRATEGY")
    registry.register("self", "plug.selfreg:STRATEGY")  # one module imported under two package paths

    class First:
        pass

    class Second:
        pass

    registry.add("oft", First())
    registry.add("oft", First())  # reloaded: another instance of the same definition
    with pytest.raises(ValueError, match="strategy 'oft' is already registered"):
        registry.add("oft", Second())  # another plugin's strategy under the same name


def test_a_plugin_that_reuses_a_built_in_name_is_a_suite_problem(tmp_path: Path, monkeypatch) -> None:
    clash = _module(
        tmp_path, monkeypatch, "u_clash", "from bench.strategies import STRATEGIES\nSTRATEGIES.add('lora', object())\n"
    )
    with pytest.raises(SuiteError, match=r"plugins: 'u_clash' failed as it was imported: ValueError: strategy 'lora'"):
        parse_suite(fast_suite("clash", ["lora"], plugins=[clash]))


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "raise RuntimeError('not configured')",
            "plugins: 'u_bad' failed as it was imported: RuntimeError: not configured",
        ),
        ("def broken(:\n", "plugins: 'u_bad' failed as it was imported: SyntaxError"),
        (
            "import not_installed_dependency_xyz\n",
            "plugins: cannot import 'u_bad': it imports 'not_installed_dependency_xyz'",
        ),
    ],
)
def test_a_plugin_that_fails_is_named_in_one_line(text: str, said: str, tmp_path: Path, monkeypatch) -> None:
    bad = _module(tmp_path, monkeypatch, "u_bad", text)
    with pytest.raises(SuiteError) as raised:
        parse_suite(fast_suite("bad", ["lora"], plugins=[bad]))
    assert said in str(raised.value)


def test_naming_a_plugin_keeps_the_built_in_runs_ids(tmp_path: Path, monkeypatch) -> None:
    noop = _module(tmp_path, monkeypatch, "u_noop", "")
    plain = {spec.label: spec.run_id for spec in plan(parse_suite(fast_suite("s", ["lora", "full"])))}
    named = plan(parse_suite(fast_suite("s", ["lora", "full"], plugins=[noop])))
    assert {spec.label: spec.run_id for spec in named} == plain
    assert all(spec.plugins == [noop] for spec in named)  # the worker still imports it


def test_recommend_for_a_larger_model_estimates_a_plugin_strategy(tmp_path: Path, monkeypatch) -> None:
    """`bench recommend --model-config` said "oft: no estimate for your model (UnknownNameError ...)": the records
    name their plugins, and the estimate imports them as the run did."""
    from bench.recommend import recommend
    from bench.strategies import STRATEGIES
    from tests.synthetic_records import make_record

    monkeypatch.setattr(STRATEGIES, "_targets", dict(STRATEGIES._targets))  # the plugin's name goes with the test
    monkeypatch.setattr(STRATEGIES, "_loaded", dict(STRATEGIES._loaded))
    plugin = _module(
        tmp_path,
        monkeypatch,
        "u_lora_again",
        "from bench.strategies import STRATEGIES\nfrom bench.strategies.lora import LoRA\n"
        "STRATEGIES.add('my-lora', LoRA())\n",
    )
    record = make_record("lora", 0)
    spec = {**record.spec, "strategy": "my-lora", "plugins": [plugin]}
    record = record.model_copy(update={"strategy": "my-lora", "spec": spec})
    config = Path(__file__).resolve().parents[1] / "suites" / "model-configs" / "smollm2-135m"
    rec = recommend([record], 24 * 2**30, model_config=str(config))
    estimate = rec.candidate("lora").estimate
    assert estimate is not None and estimate.error is None and estimate.total_mib


def test_an_executor_a_plugin_registers_can_be_chosen(tmp_path: Path, monkeypatch, capsys) -> None:
    """`--executor` offered only the built-in names, fixed before the suite's plugins were imported."""
    from bench.cli.main import main
    from bench.executors import EXECUTORS

    monkeypatch.setattr(EXECUTORS, "_targets", dict(EXECUTORS._targets))  # the plugin's name goes with the test
    plugin = _module(
        tmp_path,
        monkeypatch,
        "u_executor",
        "from bench.executors import EXECUTORS\nEXECUTORS.register('u-local', 'bench.executors.local:LocalExecutor')\n",
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(fast_suite("plugged", ["lora"], plugins=[plugin])))
    assert main(["run", str(suite), "--executor", "u-lcal", "--results", str(tmp_path / "r"), "--no-report"]) == 2
    assert "unknown executor 'u-lcal'; did you mean 'u-local'?" in " ".join(capsys.readouterr().err.split())


PLUGIN_STRATEGY = """from bench.strategies import STRATEGIES
from bench.strategies.lora import LoRA


class MyLoRA(LoRA):
    scale = {scale}


STRATEGIES.add("my-lora", MyLoRA())
"""


def test_a_stored_run_of_a_plugin_strategy_runs_again_once_its_code_changes(tmp_path: Path, monkeypatch, capsys):
    """Editing a plugin's code reused its stored runs ("0 executed, 2 reused"): its module is a digest of the run."""
    from bench.execute import _kept
    from bench.records.store import ResultStore
    from bench.strategies import STRATEGIES
    from bench.tasks.fingerprint import DIGEST_KEY, data_fingerprint
    from tests.synthetic_records import make_record

    monkeypatch.setattr(STRATEGIES, "_targets", dict(STRATEGIES._targets))
    monkeypatch.setattr(STRATEGIES, "_loaded", dict(STRATEGIES._loaded))
    plugin = _module(tmp_path, monkeypatch, "u_my_lora", PLUGIN_STRATEGY.format(scale=1))
    spec = next(s for s in plan(parse_suite(fast_suite("mine", ["my-lora", "lora"], plugins=[plugin]))))
    assert set(data_fingerprint(spec)) == {"plugin:u_my_lora"}
    store = ResultStore(tmp_path / "results")
    model = {DIGEST_KEY: data_fingerprint(spec)}
    store.write(make_record("lora", 0).model_copy(update={**spec.record_header(), "model": model}))
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}) is not None
    (tmp_path / "u_my_lora.py").write_text(PLUGIN_STRATEGY.format(scale=2))  # the user edits the plugin
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}, tell=True) is None
    assert "changed since its stored run: plugin:u_my_lora" in capsys.readouterr().err
    built_in = plan(parse_suite(fast_suite("mine", ["lora"], plugins=[plugin])))[0]
    assert "plugin:u_my_lora" not in data_fingerprint(built_in)  # a built-in strategy's runs do not depend on it


def test_a_plugin_strategy_without_the_protocol_is_refused_naming_what_it_lacks(tmp_path: Path, monkeypatch):
    """A strategy written from the README's summary ("an Options model and prepare/save") failed deep in a run
    with "AttributeError: ... no attribute 'objective'"."""
    from bench.strategies import STRATEGIES

    monkeypatch.setattr(STRATEGIES, "_targets", dict(STRATEGIES._targets))
    monkeypatch.setattr(STRATEGIES, "_loaded", dict(STRATEGIES._loaded))
    text = (
        "from bench.strategies import STRATEGIES\nfrom bench.strategies.base import StrategyOptions\n\n\n"
        "class Half:\n    Options = StrategyOptions\n\n    def prepare(self, model, options, context):\n"
        "        return model\n\n\nSTRATEGIES.add('half', Half())\n"
    )
    plugin = _module(tmp_path, monkeypatch, "u_half", text)
    with pytest.raises(SuiteError, match=r"strategy 'half' lacks objective, save \(the protocol: docs/strategies.md\)"):
        parse_suite(fast_suite("half", ["half"], plugins=[plugin]))


def test_bench_ls_lists_what_plugins_register(tmp_path: Path, monkeypatch, capsys) -> None:
    """`bench ls` could not show a plugin's strategies: it took no suite and imported no plugin."""
    from bench.cli.main import main
    from bench.strategies import STRATEGIES

    monkeypatch.setattr(STRATEGIES, "_targets", dict(STRATEGIES._targets))
    monkeypatch.setattr(STRATEGIES, "_loaded", dict(STRATEGIES._loaded))
    plugin = _module(tmp_path, monkeypatch, "u_ls_lora", PLUGIN_STRATEGY.format(scale=1))
    assert main(["ls", "--plugins", plugin]) == 0
    assert "my-lora" in capsys.readouterr().out
    assert main(["ls", "--plugins", "u_not_there"]) == 2
    assert "plugins: cannot import 'u_not_there'" in " ".join(capsys.readouterr().err.split())


def test_a_strategy_registered_as_a_class_is_digested_by_its_own_module(tmp_path: Path, monkeypatch) -> None:
    """A class registered itself (not an instance) was digested by its metaclass's module (`abc`), or not at all."""
    from bench.strategies import STRATEGIES
    from bench.tasks.fingerprint import plugin_source

    monkeypatch.setattr(STRATEGIES, "_targets", dict(STRATEGIES._targets))
    monkeypatch.setattr(STRATEGIES, "_loaded", dict(STRATEGIES._loaded))
    text = (
        "import abc\nfrom bench.strategies import STRATEGIES\n\n\nclass Plain(abc.ABC):\n    pass\n\n\n"
        "STRATEGIES.add('plain', Plain)\n"
    )
    plugin = _module(tmp_path, monkeypatch, "u_class", text)
    __import__(plugin)
    assert plugin_source("plain") == (plugin, str(tmp_path / "u_class.py"))


def test_a_lazily_registered_plugin_strategy_that_fails_is_one_line(tmp_path: Path, monkeypatch) -> None:
    from bench.strategies import STRATEGIES

    monkeypatch.setattr(STRATEGIES, "_targets", dict(STRATEGIES._targets))
    monkeypatch.setattr(STRATEGIES, "_loaded", dict(STRATEGIES._loaded))
    _module(tmp_path, monkeypatch, "u_lazy_target", "raise RuntimeError('half written')\n")
    plugin = _module(
        tmp_path,
        monkeypatch,
        "u_lazy",
        "from bench.strategies import STRATEGIES\nSTRATEGIES.register('lazy', 'u_lazy_target:X')\n",
    )
    with pytest.raises(SuiteError, match=r"strategy 'lazy' cannot be loaded: RuntimeError: half written"):
        parse_suite(fast_suite("lazy", ["lazy"], plugins=[plugin]))
