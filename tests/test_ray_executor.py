"""The Ray executor (`bench run --executor ray`) on a local Ray cluster: the same run ids and valid
records as the local executor; a Ray worker killed midway, a run killed, a run past its timeout and a
run past its memory limit become failed records with the reason while the rest completes; a killed
driver resumes without losing or duplicating a run. Also, for every executor: an unusable results
folder stops `bench run` before any training, with one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.records.store import load_records
from tests.conftest import REPO, bench_cli, fast_suite, write_suite

ray = pytest.importorskip("ray", reason="Ray is not installed (the optional extra: pip install '.[ray]')")

FAULTS = '''
import os, signal, time
from typing import ClassVar
from bench.strategies import STRATEGIES
from bench.strategies.base import StrategyOptions

class Options(StrategyOptions):
    mode: str = "hang"

class RayFaulty:
    """Fails on purpose, in the way its `mode` names."""
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def prepare(self, model, options, context):
        if options.mode == "kill-ray-worker":  # the run's parent is the Ray worker that runs its task
            os.kill(os.getppid(), signal.SIGKILL)
        if options.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(3600)

    def save(self, model, directory):
        pass

STRATEGIES.add("rayfaulty", RayFaulty())
'''

# Until bench/run/worker.py applies the memory limit itself, a sitecustomize does it as the worker would.
LIMIT_SHIM = "from bench.measure.limits import apply_memory_limit\napply_memory_limit()\n"


@pytest.fixture(scope="module")
def cluster() -> str:
    """One local Ray cluster for the module (2 CPUs); its address for `--address`. With token
    authentication (Ray >= 2.59 turns it on for local clusters), ray.init sets RAY_AUTH_MODE=token in
    this process's environment: the CLI's processes inherit it and send the token when connecting."""
    auth, on_sigterm = os.environ.get("RAY_AUTH_MODE"), signal.getsignal(signal.SIGTERM)
    # Ray replaces a loopback node address with the node's own and listens on every interface anyway
    context = ray.init(
        num_cpus=2, address="local", include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False
    )
    yield context.address_info["gcs_address"]
    ray.shutdown()
    signal.signal(signal.SIGTERM, on_sigterm)  # ray.init replaced it
    if auth is None:  # later tests' processes see no Ray setting
        os.environ.pop("RAY_AUTH_MODE", None)


def _records(results: Path) -> dict:
    return {(r.label, r.seed): r for r in load_records(results)}


def test_the_smoke_suite_on_ray_gives_the_local_executors_run_ids_and_records(tmp_path: Path, cluster: str):
    from bench.api import run_suite

    suite = write_suite(tmp_path, fast_suite("parity", ["full", "lora"]))
    local = run_suite(suite, tmp_path / "local", executor="local")
    started = time.perf_counter()
    on_ray = run_suite(suite, tmp_path / "ray", executor="ray")  # the cluster the fixture started
    print(f"ray executor, 2 runs: {time.perf_counter() - started:.1f} s")
    assert [r.run_id for r in on_ray.results] == [r.run_id for r in local.results]  # plan order
    assert sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.json")) == sorted(
        p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.json")
    )  # same layout: <suite>/<machine>/<run_id>.json
    by_label = {r.label: r for r in local.results}
    for record in load_records(tmp_path / "ray"):  # what was written parses as a valid record
        assert record.status == "ok", record.reason
        assert record.start.startswith("cold (the ray executor")
        assert record.budget["steps_done"] == 4 and record.metrics["train.steps_per_s"].value > 0
        twin = by_label[record.label]  # the same seed trains the same way, wherever it runs
        assert [(p.step, p.loss) for p in record.loss_curve] == [(p.step, p.loss) for p in twin.loss_curve]
        assert (tmp_path / "ray" / record.log_path).is_file()  # relative to the results root (schema 7)


def test_a_killed_ray_worker_and_a_killed_run_become_failed_records_and_the_rest_completes(
    tmp_path: Path, cluster: str
):
    (tmp_path / "bench_ray_faults.py").write_text(FAULTS)
    strategies = [
        {"rayfaulty": {"mode": "kill-ray-worker", "label": "worker-killed"}},
        {"rayfaulty": {"mode": "kill", "label": "run-killed"}},
        "full",
    ]
    suite = write_suite(tmp_path, fast_suite("raykill", strategies, plugins=["bench_ray_faults"]))
    done = bench_cli(
        "run", str(suite), "--results", str(tmp_path / "results"), "--quiet", "--executor", "ray",
        "--address", cluster, env={"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # failed runs make the exit non-zero
    records = {label: r for (label, _), r in _records(tmp_path / "results").items()}
    assert set(records) == {"worker-killed", "run-killed", "full"}
    crashed = records["worker-killed"]
    assert crashed.status == "failed" and "the Ray worker running this run died" in crashed.reason
    assert "WorkerCrashedError" in crashed.reason
    assert records["run-killed"].status == "failed" and "SIGKILL" in records["run-killed"].reason
    assert records["full"].status == "ok" and records["full"].metrics["train.steps_per_s"].value > 0


def test_a_ray_run_past_its_timeout_is_a_failed_record(tmp_path: Path, cluster: str):
    (tmp_path / "bench_ray_faults.py").write_text(FAULTS)
    strategies = [{"rayfaulty": {"mode": "hang", "label": "hangs"}}]
    suite = write_suite(
        tmp_path, fast_suite("rayhang", strategies, plugins=["bench_ray_faults"], execution={"timeout_s": 5})
    )
    done = bench_cli(
        "run", str(suite), "--results", str(tmp_path / "results"), "--quiet", "--executor", "ray",
        "--address", cluster, env={"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (record,) = _records(tmp_path / "results").values()
    assert record.status == "failed" and record.reason.startswith("timed out after 5 s (execution.timeout_s)")


def test_a_ray_run_past_its_memory_limit_is_a_failed_record_naming_out_of_memory(tmp_path: Path, cluster: str):
    environment = {}
    if "apply_memory_limit" not in (REPO / "bench" / "run" / "worker.py").read_text():
        (tmp_path / "sitecustomize.py").write_text(LIMIT_SHIM)
        environment["PYTHONPATH"] = str(tmp_path)
    resources = {"cpus": 1, "memory_gib": 0.25}
    suite = write_suite(tmp_path, fast_suite("raymem", ["full"], execution={"timeout_s": 120, "resources": resources}))
    done = bench_cli(
        "run", str(suite), "--results", str(tmp_path / "results"), "--quiet", "--executor", "ray",
        "--address", cluster, env=environment,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (record,) = _records(tmp_path / "results").values()
    assert record.status == "failed"
    assert "out of memory: the run exceeded its memory limit of 0.25 GiB" in record.reason.splitlines()[-1]


def test_a_killed_driver_resumes_on_ray_without_loss_or_duplicates(tmp_path: Path, cluster: str):
    suite = write_suite(tmp_path, fast_suite("rayresume", ["full"], seeds=[0, 1, 2]))
    results = tmp_path / "results"
    command = [sys.executable, "-m", "bench.cli", "run", str(suite), "--results", str(results), "--quiet"]
    # the driver starts a local cluster of its own; its death takes that cluster and its runs down
    driver = subprocess.Popen([*command, "--executor", "ray"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not list(results.rglob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    first = sorted(results.rglob("*.json"))[0]
    first_text = first.read_text()
    os.kill(driver.pid, signal.SIGKILL)
    assert driver.wait(timeout=60) == -signal.SIGKILL
    stored = len(list(results.rglob("*.json")))
    assert 1 <= stored < 3
    json.loads(first_text)  # what was stored is whole
    resumed = bench_cli("run", str(suite), "--results", str(results), "--executor", "ray", "--address", cluster)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{stored} reused" in resumed.stderr
    assert first.read_text() == first_text  # the stored record was reused, not rerun
    runs = sorted(f"{r.label}/{r.seed}" for r in load_records(results))
    assert runs == ["full/0", "full/1", "full/2"]  # none lost, none duplicated
    assert {r.status for r in load_records(results)} == {"ok"}


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_an_unwritable_results_folder_stops_before_any_training(tmp_path: Path, executor: str):
    suite = write_suite(tmp_path, fast_suite("nowrite", ["full"]))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    started = time.perf_counter()
    done = bench_cli("run", str(suite), "--results", str(blocker / "results"), "--executor", executor)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"bench run: results folder {blocker / 'results'} is not writable: Not a directory; nothing was run"
    ]
    assert time.perf_counter() - started < 30  # no training, no cluster


def test_a_nearly_full_results_folder_is_refused(tmp_path: Path):
    from bench.execute import results_dir_problem

    assert results_dir_problem(tmp_path) is None
    problem = results_dir_problem(tmp_path, min_free=2**62)
    assert problem.startswith(f"results folder {tmp_path} has ") and problem.endswith("nothing was run")
    assert not list(tmp_path.iterdir())  # the write check leaves nothing behind


def test_without_ray_the_ray_executor_says_how_to_install_it(tmp_path: Path):
    (tmp_path / "ray.py").write_text("raise ImportError('planted: no ray here')\n")
    suite = write_suite(tmp_path, fast_suite("noray", ["full"]))
    done = bench_cli(
        "run", str(suite), "--results", str(tmp_path / "results"), "--executor", "ray",
        env={"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "bench run: the ray executor needs Ray: pip install '.[ray]'"


def test_a_cluster_address_that_does_not_answer_is_one_line(tmp_path: Path):
    suite = write_suite(tmp_path, fast_suite("noanswer", ["full"]))
    done = bench_cli(
        "run", str(suite), "--results", str(tmp_path / "results"), "--executor", "ray", "--address", "127.0.0.1:1"
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "bench run: could not reach the Ray cluster at 127.0.0.1:1: Connection refused"


def test_the_memory_limit_is_set_in_the_child_and_its_failures_are_named():
    from bench.measure.limits import MEMORY_LIMIT_VARIABLE, child_env, out_of_memory_reason

    assert child_env(None) == {} and child_env(0.5)[MEMORY_LIMIT_VARIABLE] == str(2**29)
    assert child_env(0.5)["MIMALLOC_ARENA_RESERVE"]  # reservations a limit would count stay small
    probe = (
        "from bench.measure.limits import apply_memory_limit\n"
        "print(apply_memory_limit())\n"
        "try:\n    bytearray(600 * 2**20)\nexcept MemoryError:\n    print('MemoryError')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **child_env(0.25)},
        timeout=60,
    )
    assert done.stdout.split() == [str(2**28), "MemoryError"], done.stderr
    limit = 2**28
    assert out_of_memory_reason(MemoryError(), limit).startswith("out of memory: the run exceeded its memory limit")
    assert "0.25 GiB" in out_of_memory_reason("Traceback ...\nMemoryError", limit)
    assert out_of_memory_reason("terminate called after throwing an instance of 'std::bad_alloc'") == (
        "out of memory: std::bad_alloc"
    )
    assert out_of_memory_reason(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried")) is not None
    assert out_of_memory_reason(-signal.SIGKILL).startswith("likely out of memory: killed by SIGKILL")
    assert out_of_memory_reason("torch.OutOfMemoryError: CUDA out of memory.", limit) == (
        "out of memory on the GPU (CUDA out of memory)"
    )
    assert out_of_memory_reason("RuntimeError: planted failure", limit) is None
    assert out_of_memory_reason(-signal.SIGTERM) is None


def test_a_plugin_no_node_can_import_stops_before_any_run(tmp_path: Path, cluster: str, monkeypatch):
    """A plugin importable on the driver (here through its sys.path only) but not where the runs go failed
    each run there, one by one, with an import error: now one SetupError before any run, naming the node and
    the plugin, and nothing stored."""
    from bench.api import run_suite
    from bench.executors.base import SetupError

    plugins = tmp_path / "driver_only"
    plugins.mkdir()
    (plugins / "driver_only_plugin_xyz.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(plugins))
    suite = write_suite(tmp_path, fast_suite("plugin-probe", ["full"], plugins=["driver_only_plugin_xyz"]))
    with pytest.raises(SetupError) as raised:
        run_suite(suite, tmp_path / "results", executor="ray", address=cluster)
    said = str(raised.value)
    assert "the suite's plugins cannot be imported where its runs would go" in said
    assert "No module named 'driver_only_plugin_xyz'" in said
    assert not list((tmp_path / "results").rglob("*.json"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")])))
    report = run_suite(suite, tmp_path / "results", executor="ray", address=cluster)  # on the path it travels
    assert [r.status for r in report.results] == ["ok"]


def test_a_plugin_probe_that_hangs_or_fails_on_a_node_is_one_setup_error(tmp_path: Path, cluster: str, monkeypatch):
    """A plugin import that hung past the probe's timeout (subprocess.TimeoutExpired in the task) or a probe
    task that failed (a node without bench) gave a raw traceback: now one line naming the node and the problem."""
    import bench.executors.ray as ray_executor
    from bench.executors.base import SetupError

    (tmp_path / "slow_plugin_xyz.py").write_text("import time\ntime.sleep(30)\n")
    executor, forwarded = ray_executor.RayExecutor(address=cluster), {"PYTHONPATH": str(tmp_path)}
    executor._connect()  # the module's cluster
    monkeypatch.setattr(ray_executor, "PLUGIN_PROBE_TIMEOUT_S", 1, raising=False)
    with pytest.raises(SetupError) as hung:
        executor._check_plugins(["slow_plugin_xyz"], forwarded)
    assert ": importing slow_plugin_xyz did not end within 1 s" in str(hung.value)

    def without_bench(*args: object) -> None:
        raise ModuleNotFoundError("No module named 'bench'")

    monkeypatch.setattr(ray_executor, "_plugins_missing", without_bench)
    with pytest.raises(SetupError) as failed:
        executor._check_plugins(["slow_plugin_xyz"], forwarded)
    said = str(failed.value)
    assert "the probe failed: ModuleNotFoundError: No module named 'bench'" in said and "\n" not in said
