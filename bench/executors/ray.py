"""One Ray task per run, on an existing Ray cluster (`--address`) or on a local one started for the call.

Each task asks Ray for the suite's `execution.resources` (num_cpus, num_gpus, memory) and runs its
run exactly as the `local` backend does: a fresh `python -m bench.run.worker` process with the timeout
and the memory limit, whose record (or the reason there is none) the task returns to the driver.
The driver stores it through bench/execute.py like any other executor's, so resume, failure records
and timeouts behave as with the local executor. A Ray worker that dies, a task that Ray's memory
monitor kills, a node that is lost: each becomes a failed record naming it, and the suite goes on.

Progress from Ray runs is coarser than from local ones: a run's start (reported by the task through a
small actor) and its end; the per-step events of its process are not relayed. Its log goes to the
driver's logs folder: written in place when the task runs on the driver's node, else returned with
the record. A run whose parent (`start_from`) is in the same batch is submitted once the parent ends,
so it finds the parent's artefact cached as it would locally.

Ray needs the package on every node (`pip install '.[ray]'`, same version); the driver's PYTHONPATH
(plugins: `plugins:` modules) and BENCH_*/HF_* variables travel with each task. Before any run, the
suite's plugins are imported on every node that can take one, as a run's process would import them: a
node where that fails, hangs, or the probe itself fails (no bench there) stops the suite with one line naming it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.backends.base import Outcome
from bench.backends.local import RUN_STARTUP_S, start_text
from bench.executors.base import Finished, Job, Progress, SetupError, utc_now
from bench.measure import env, limits
from bench.spec import Resources

try:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError:  # an optional extra
    ray = None

INSTALL_HINT = "the ray executor needs Ray: pip install '.[ray]'"
GRACE_S = 30  # the task kills its run at its timeout itself; past this more, the driver cancels the task
POLL_S = 1.0
KILLED = "killed (the driver cancelled its Ray task)"
FORWARDED_PREFIXES = ("BENCH_", "HF_")
PLUGIN_PROBE_TIMEOUT_S = 300  # a plugin import on a node that takes longer is taken as hung
# Ray sends its token to an address given explicitly only when told to (Ray >= 2.52)
AUTH_HINT = "; a cluster with token authentication also needs RAY_AUTH_MODE=token and its token (docs/scaling.md)"


def cores_warning(jobs: list[Job], resources: Resources) -> str | None:
    """Where a run starts more processes than the CPUs it asks Ray for: Ray places runs by what they ask, so
    several such runs share cores and time one another (their records say contaminated, at best)."""
    most = max((job.spec.processes for job in jobs), default=1)
    if most <= resources.cpus:
        return None
    return (
        f"runs of {most} processes ask Ray for {resources.cpus:g} CPU each (execution.resources.cpus): Ray may "
        f"place several on the same cores, which slows and contaminates their timing; set execution.resources.cpus "
        f"to at least {most}"
    )


class RayExecutor:
    def __init__(
        self,
        backend: str = "warm",
        timeout_s: float = 1800,
        resources: Resources | None = None,
        clock: Callable[[], float] | None = None,
        address: str | None = None,
    ) -> None:
        if ray is None:
            raise SetupError(INSTALL_HINT)
        self.timeout_s = timeout_s
        self.resources = resources or Resources()
        self.clock = clock or time.perf_counter
        self.address = address
        # a warm server cannot be shared by tasks: every run starts a fresh process, and its record says why;
        # asked for cold starts, the record still names the executor (its timing shared a node with other tasks)
        self.why_cold = "the ray executor starts each run in a fresh process" if backend == "warm" else "a Ray task"
        self.start = start_text("cold", self.why_cold)  # a failure record's `start` when the task says none
        self.connected = False
        self.owned = False  # this call initialised Ray: it disconnects (and stops a local cluster) at the end
        self.unfit: str | None = None
        self.in_flight: dict[Any, Job] = {}
        self.tracker: Any = None

    # -- the cluster ------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self.connected:
            return
        self.connected = True
        if ray.is_initialized():  # a caller (a test, a notebook) connected already: use that, leave it up
            return
        common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        on_sigterm = signal.getsignal(signal.SIGTERM)  # ray.init replaces it with an exit (code 15)
        unreachable = _unreachable(self.address) if self.address else None
        if unreachable:  # Ray itself would retry an address that does not answer for ever
            raise SetupError(f"could not reach the Ray cluster at {self.address}: {unreachable}")
        try:
            if self.address:
                ray.init(address=self.address, **common)
            else:
                # Ray's servers listen on every interface (it maps a 127.0.0.1 node address to the node's
                # own); since 2.59 a local cluster requires its token (~/.ray/auth_token)
                ray.init(address="local", num_cpus=os.cpu_count(), **common)
        except Exception as error:  # ConnectionError, a version mismatch, a bad address
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
            hint = AUTH_HINT if self.address and not os.environ.get("RAY_AUTH_MODE") else ""
            raise SetupError(f"could not start or reach {where}: {str(error).splitlines()[0]}{hint}") from None
        finally:
            if on_sigterm is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, on_sigterm)  # SIGTERM stays a Ctrl-C: runs in flight cancelled
        self.owned = True

    def _needs(self) -> dict[str, Any]:
        needs: dict[str, Any] = {"num_cpus": self.resources.cpus, "num_gpus": self.resources.gpus}
        limit = limits.limit_bytes(self.resources.memory_gib)
        if limit:
            needs["memory"] = limit
        return needs

    def _fitting_nodes(self) -> list[dict[str, Any]]:
        """The live nodes of the cluster that can take one run (its execution.resources)."""
        limit = limits.limit_bytes(self.resources.memory_gib) or 0
        wanted = {"CPU": self.resources.cpus, "GPU": self.resources.gpus, "memory": limit}.items()
        alive = [node for node in ray.nodes() if node.get("Alive")]
        return [node for node in alive if all(node.get("Resources", {}).get(k, 0) >= v for k, v in wanted if v)]

    def _no_node_fits(self) -> str | None:
        """Why no node of the cluster can take one run (the task would wait forever), or None."""
        if self._fitting_nodes():
            return None
        limit = limits.limit_bytes(self.resources.memory_gib) or 0
        offers = "; ".join(
            f"{node.get('CPU', 0):g} CPUs, {node.get('GPU', 0):g} GPUs, {node.get('memory', 0) / 2**30:.1f} GiB"
            for node in (node.get("Resources", {}) for node in ray.nodes() if node.get("Alive"))
        )
        gib = f", {limit / 2**30:.3g} GiB" if limit else ""
        need = f"{self.resources.cpus:g} CPUs, {self.resources.gpus:g} GPUs{gib}"
        why = f"no node of the Ray cluster can take a run that needs {need} (execution.resources)"
        return f"{why}; nodes offer: {offers}"

    def machine(self) -> str:
        """The machine kind of a node that takes the suite's resources, from a probe task there."""
        self._connect()
        self.unfit = self._no_node_fits()
        if self.unfit:
            return env.machine_id()  # nothing will run; its failure records are filed under the driver's
        probe = ray.remote(env.machine_id).options(max_retries=0, **self._needs())
        try:
            return ray.get(probe.remote())
        except ray.exceptions.RayError as error:  # e.g. the package is not installed on that node
            raise SetupError(f"a probe task on the Ray cluster failed: {_last_line(error)}") from None

    def _check_plugins(self, modules: list[str], forwarded: dict[str, str]) -> None:
        """Import the suite's plugins on every node that can take a run, as its run's process would: a plugin
        missing there failed each run that landed on it, one by one (a SetupError names node and plugin)."""
        if not modules:
            return
        nodes, probe, problems = self._fitting_nodes(), ray.remote(num_cpus=0, max_retries=0)(_plugins_missing), []
        args = (modules, forwarded, PLUGIN_PROBE_TIMEOUT_S)
        on = [NodeAffinitySchedulingStrategy(node["NodeID"], soft=False) for node in nodes]
        refs = [probe.options(scheduling_strategy=where).remote(*args) for where in on]
        for node, ref in zip(nodes, refs):
            try:
                host, why = ray.get(ref)
            except ray.exceptions.RayError as error:  # e.g. bench is not installed on that node
                host, why = node.get("NodeManagerHostname", node["NodeID"]), f"the probe failed: {_last_line(error)}"
            problems += [f"{host}: {why}"] if why else []
        if problems:
            raise SetupError(
                "the suite's plugins cannot be imported where its runs would go (install them on every node, or"
                " put them on the driver's PYTHONPATH, which travels with each task): " + "; ".join(problems)
            )

    # -- the runs ---------------------------------------------------------------------------------

    def run(self, jobs: list[Job], machine: str, progress: Progress) -> Iterator[Finished]:
        self._connect()
        if self.unfit is None:
            self.unfit = self._no_node_fits()
        if self.unfit:
            for job in jobs:
                yield Finished(job, Outcome(None, self.unfit, start=None), utc_now(), 0.0)  # no process started
            return
        if warning := cores_warning(jobs, self.resources):
            print(f"bench: {warning}", file=sys.stderr)
        forwarded = _forwarded_env(self.resources.memory_gib)
        self._check_plugins(sorted({module for job in jobs for module in job.spec.plugins}), forwarded)
        self.tracker = ray.remote(_Tracker).options(num_cpus=0).remote()
        task, needs = ray.remote(_run_task), {"max_retries": 0, "retry_exceptions": False, **self._needs()}
        driver_node = ray.get_runtime_context().get_node_id()
        waiting = {job.spec.run_id for job in jobs}
        deferred: list[Job] = []
        started: dict[str, tuple[str, float]] = {}  # run_id -> (UTC start, driver clock at start)

        def submit(job: Job) -> None:
            spec = job.spec
            ref = task.options(name=f"bench {spec.label} seed={spec.seed}", **needs).remote(
                spec.model_dump_json(),
                machine,
                self.timeout_s,
                str(job.log_path),
                driver_node,
                forwarded,
                self.why_cold,
                self.tracker,
            )
            self.in_flight[ref] = job

        for job in jobs:  # a chained run waits for its parent (the parent's artefact is then cached)
            parent = (job.spec.parent or {}).get("run_id")
            (deferred.append if parent in waiting else submit)(job)

        while self.in_flight:
            done, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=POLL_S)
            for run_id, at in ray.get(self.tracker.take.remote()):
                started[run_id] = (at, self.clock())
                job = next((j for j in self.in_flight.values() if j.spec.run_id == run_id), None)
                if job is not None:
                    progress.start_run(job.index, job.total, job.spec)
            ended = [(ref, self._collect(ref, self.in_flight[ref])) for ref in done]
            ended += self._stuck(done, started)
            for ref, outcome in ended:
                job = self.in_flight.pop(ref)
                waiting.discard(job.spec.run_id)
                at, began = started.get(job.spec.run_id, (utc_now(), self.clock()))
                yield Finished(job, outcome, at, self.clock() - began)
                for child in [j for j in deferred if (j.spec.parent or {}).get("run_id") not in waiting]:
                    deferred.remove(child)
                    submit(child)

    def _stuck(self, done: list[Any], started: dict[str, tuple[str, float]]) -> list[tuple[Any, Outcome]]:
        """Tasks still running past their run's own deadline (start-up allowance, timeout, grace): cancelled."""
        stuck = []
        for ref, job in list(self.in_flight.items()):
            begun = started.get(job.spec.run_id)
            if ref not in done and begun and self.clock() - begun[1] > RUN_STARTUP_S + self.timeout_s + GRACE_S:
                ray.cancel(ref, force=True)
                reason = f"timed out after {self.timeout_s:g} s (execution.timeout_s); {KILLED}"
                stuck.append((ref, Outcome(None, reason, start=self.start, seconds=self.clock() - begun[1])))
        return stuck

    def _collect(self, ref: Any, job: Job) -> Outcome:
        """The run's record, or why there is none: a failure the run reported, or what Ray says happened."""
        from bench.backends.local import _tail
        from bench.records.results import parse_record

        try:
            reply = ray.get(ref)
        except ray.exceptions.RayError as error:
            name = type(error).__name__
            what = {
                "WorkerCrashedError": "the Ray worker running this run died (its run's process died with it)",
                "OutOfMemoryError": "Ray's memory monitor killed this run's task: the node ran low on memory",
                "NodeDiedError": "the node running this run left the Ray cluster",
                "TaskCancelledError": "the Ray task of this run was cancelled",
            }.get(name, "the Ray task of this run failed")
            detail = "\n".join(str(error).strip().splitlines()[:12])
            return Outcome(None, f"{what} ({name})\n{detail}\n{_tail(job.log_path)}".strip(), start=self.start)
        if reply["log"] is not None:  # the run went to another node: its log came back with it
            job.log_path.parent.mkdir(parents=True, exist_ok=True)
            job.log_path.write_text(reply["log"], encoding="utf-8")
        record = parse_record(json.loads(reply["record"])) if reply["record"] else None
        return Outcome(
            record, reply["failure"], reply.get("start", self.start), reply.get("seconds"), reply.get("oom_kills")
        )

    def close(self) -> None:
        """Stopped early (Ctrl-C, an error), runs may be in flight. A cluster this call started goes down
        with them (each run's process dies with its Ray worker); on a cluster someone else started, the
        tasks are cancelled (each kills its run's process group as it stops), and the driver disconnects."""
        if ray is None or not self.connected:
            return
        if not self.owned:
            try:
                for ref in self.in_flight:
                    ray.cancel(ref)  # not force: a forced cancel racing the task's reply can abort Ray's driver
                if self.tracker is not None:
                    ray.kill(self.tracker)
            except Exception:  # the cluster is gone already: nothing left to release there
                pass
        self.in_flight.clear()
        self.tracker = None
        if self.owned:
            ray.shutdown()
            self.owned = False
        self.connected = False


def _last_line(error: BaseException) -> str:
    """The last line of an error's message (a Ray error's: the remote exception), or its type's name."""
    return (str(error).strip().splitlines() or [type(error).__name__])[-1]


def _unreachable(address: str, timeout_s: float = 10) -> str | None:
    """Why nothing answers at HOST:PORT (connection refused, unknown host, no answer), else None.
    Other forms (`auto`, `ray://...`) are left to Ray."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__
    return None


# -- what runs on the cluster ------------------------------------------------------------------


def _plugins_missing(modules: list[str], forwarded: dict[str, str], timeout_s: float) -> tuple[str, str | None]:
    """(this node's host name, why the plugins cannot be imported here, or None): in a fresh interpreter with
    the environment a run's process gets (`_run_task`), as a plugin a run cannot import fails that run."""
    import subprocess

    code = "import importlib, sys\nfor module in sys.argv[1:]:\n    importlib.import_module(module)"
    command, child = [sys.executable, "-c", code, *modules], {**os.environ, **_child_env(forwarded)}
    try:
        done = subprocess.run(command, env=child, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return socket.gethostname(), f"importing {', '.join(modules)} did not end within {timeout_s:g} s"
    lines = done.stderr.strip().splitlines()
    return socket.gethostname(), None if done.returncode == 0 else (lines[-1] if lines else f"exit {done.returncode}")


class _Tracker:
    """Tells the driver which runs started (a task reports itself when Ray starts it)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []

    def start(self, run_id: str, at: str) -> None:
        self.started.append((run_id, at))

    def take(self) -> list[tuple[str, str]]:
        taken, self.started = self.started, []
        return taken


def _forwarded_env(memory_gib: float | None) -> dict[str, str]:
    """What a run's process gets from the driver: its import path, bench and Hugging Face settings, the limit."""
    own = ("BENCH_START", "BENCH_COLD_REASON")  # set per run by the backend
    found = {
        name: value
        for name, value in os.environ.items()
        if name == "PYTHONPATH" or (name.startswith(FORWARDED_PREFIXES) and name not in own)
    }
    return found | limits.child_env(memory_gib)


def _child_env(forwarded: dict[str, str]) -> dict[str, str]:
    """What the driver forwards, with this node's own PYTHONPATH kept behind the driver's."""
    own = os.environ.get("PYTHONPATH") if "PYTHONPATH" in forwarded else None
    return {**forwarded, "PYTHONPATH": forwarded["PYTHONPATH"] + os.pathsep + own} if own else dict(forwarded)


def _run_task(
    spec_json: str,
    machine: str,
    timeout_s: float,
    log_path: str,
    driver_node: str,
    forwarded: dict[str, str],
    why_cold: str | None,
    tracker: Any,
) -> dict[str, Any]:
    """One run in a fresh process on this node, as the local backend runs it; its record as JSON."""
    from bench.backends.local import LocalBackend
    from bench.plan import RunSpec

    spec = RunSpec.model_validate_json(spec_json)
    tracker.start.remote(spec.run_id, utc_now())
    child_env = _child_env(forwarded)
    on_driver_node = ray.get_runtime_context().get_node_id() == driver_node
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as folder:
        log = Path(log_path) if on_driver_node else Path(folder, "run.log")
        outcome = LocalBackend(why_cold, env=child_env).execute(spec, machine, timeout_s, log, lambda event: None)
        text = None if on_driver_node else log.read_text(encoding="utf-8", errors="replace")
    return {
        "record": outcome.result.model_dump_json() if outcome.result else None,
        "failure": outcome.failure,
        "log": text,
        "start": outcome.start,
        "seconds": outcome.seconds,  # the run's process, start to end: none of the wait for Ray's scheduling
        "oom_kills": outcome.oom_kills,
    }
