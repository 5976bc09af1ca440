"""Records that can leave the machine that made them: no absolute path, no host name, no secret.

Works on raw record dicts (the JSON), so the schema migration, `ResultStore.write` and `bench publish`
share one scrub. Rules, applied to every string of a record:

* a path inside the model cache becomes `cache:<key>` (e.g. `cache:converted/SmolLM2-...-b179c9523d0e`);
* a path inside an installed package becomes `site-packages/<package>/...`, one inside this checkout
  `bench/...` (relative to the checkout), `log_path` is relative to the results root
  (`<suite>/<machine>/logs/<run_id>.log`);
* any other absolute path keeps its last two components (`data/train.jsonl`); the file's sha256,
  where the record has one, still identifies it;
* `environment.hostname` is dropped (None), and so is every other occurrence of it, unless the user
  opted in (`bench run --record-host`);
* environment variables: only the names in ALLOWED_ENV are recorded, never a name that looks secret
  (`*_TOKEN`, `*_KEY`, `*_SECRET`, passwords), and the value of any secret-looking variable of this
  process is replaced by `<redacted>` wherever it appears.

`leaks()` finds what a scrub cannot decide for the user: an absolute path, a host name, an IP
address or a `user@host` left in any string. Imports no torch.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# Environment variables a record may hold: the ones that change how torch computes on the CPU.
ALLOWED_ENV = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "MKL_NUM_THREADS",
    "ATEN_CPU_CAPABILITY",
)
SECRET_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH)$|PASSWORD|API_?KEY", re.I)
REDACTED = "<redacted>"
HOST = "<host>"
# An absolute POSIX path or a Windows drive path, also after a prefix (`jsonl:/data/x.jsonl`), not inside a URL
# (`https://x/y`: a slash before a slash is no path's start), a ratio (`tokens/s`) or a closing tag (`</s>`, a
# stop sequence of generative tasks)
ABSOLUTE = re.compile(r"(?<![\w/.~%<-])(?:/|[A-Za-z]:[\\/])(?=[^\s/])[^\s\"'<>|;,()\[\]{}`]*")
# A file URL names a path on the machine that wrote it: `file:///home/x/y` is read as the path `/home/x/y`
FILE_URL = re.compile(r"\bfile://(?:localhost)?(?=/)", re.I)
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
USER_AT_HOST = re.compile(r"\b[a-z_][\w.-]*@[a-z0-9][\w-]*(?:\.[\w-]+)+\b", re.I)
CACHE = re.compile(r"^.*?/(?:\.cache/fine-tune-bench|\.bench-cache|fine-tune-bench-cache)/")
SITE = re.compile(r"^.*?/(?:site|dist)-packages/")
CHECKOUT = re.compile(
    r"^.*?/(bench/(?:cli|run|training|analysis|estimate|records|models|strategies|tasks|evaluate|measure|report"
    r"|backends|executors|recommend)?)"
)
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # this checkout (bench/records/portable.py)


def is_secret_name(name: str) -> bool:
    """`HF_TOKEN`, `WANDB_API_KEY`, `AWS_SECRET_ACCESS_KEY`, `DB_PASSWORD`, ... (never recorded)."""
    return bool(SECRET_NAME.search(name)) or any(part in {"TOKEN", "KEY", "SECRET"} for part in name.upper().split("_"))


def allowed_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables a record may hold: the allow-list, minus anything secret-looking."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in ALLOWED_ENV if name in environ and not is_secret_name(name)}


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of this process's secret-looking variables (long enough not to match by chance)."""
    environ = os.environ if environ is None else environ
    return sorted({v for k, v in environ.items() if is_secret_name(k) and len(v) >= 8}, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every secret value of this process replaced by `<redacted>` (for logs, reports)."""
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return text


def redact_file(path: Path | str) -> None:
    """Replace this process's secret values in a text file (a run's log) in place; nothing if absent."""
    path, secrets = Path(path), secret_values()
    if not secrets or not path.is_file():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    if any(secret in text for secret in secrets):
        path.write_text(redact(text, secrets), encoding="utf-8")


def _cache_root() -> str | None:
    root = os.environ.get("BENCH_CACHE_DIR")
    return str(Path(root).expanduser().resolve()).rstrip("/") + "/" if root else None


def portable_path(path: str, *, results_root: str | None = None, cache_root: str | None = None) -> str:
    """One absolute path as it may appear in a record: a cache key, a package- or checkout-relative
    path, a path relative to the results root, or its last two components."""
    unix = path.replace("\\", "/")
    if results_root and unix.startswith(results_root):
        return unix[len(results_root) :] or "."
    if cache_root and unix.startswith(cache_root):
        return "cache:" + unix[len(cache_root) :]
    for pattern, prefix in ((CACHE, "cache:"), (SITE, "site-packages/")):
        if pattern.match(unix):
            return prefix + pattern.sub("", unix, count=1)
    source = str(SOURCE_ROOT).rstrip("/") + "/"
    if unix.startswith(source):
        return unix[len(source) :]
    found = CHECKOUT.match(unix)
    if found:
        return unix[found.start(1) :]
    parts = [
        part for part in re.split(r"/+", unix.split(":", 1)[-1] if re.match(r"^[A-Za-z]:", unix) else unix) if part
    ]
    return "/".join(parts[-2:]) or "."


def scrub_text(text: str, *, hosts: list[str] = (), secrets: list[str] = (), **roots: str | None) -> str:
    """Every absolute path in `text` made portable; host names and secret values replaced."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for host in hosts:
        text = re.sub(rf"(?<![\w-]){re.escape(host)}(?![\w-])", HOST, text)
    text = FILE_URL.sub("file:", text)
    return ABSOLUTE.sub(lambda found: portable_path(found.group(0), **roots), text)


def machine_hosts() -> list[str]:
    """This machine's host name (and its first label) where it cannot be mistaken for a word: 8+
    characters, or a digit, dot or hyphen in it (`bench` as a host name would match every path)."""
    name = socket.gethostname()
    found = {name, name.split(".")[0]} - {"localhost", ""}
    return sorted(host for host in found if len(host) >= 8 or (len(host) >= 4 and re.search(r"[\d.-]", host)))


def _walk(value: Any, change) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):  # keys too: a path can be a key (per-file figures)
        return {change(key) if isinstance(key, str) else key: _walk(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, change) for item in value]
    return value


def _log_path(raw: dict[str, Any], root: str | None) -> str | None:
    """`<suite>/<machine>/logs/<run_id>.log`: relative to the results root, found from the suite's folder."""
    log = str(raw["log_path"]).replace("\\", "/")
    if root and log.startswith(root):
        return log[len(root) :]
    parts = [part for part in log.split("/") if part]
    suite = raw.get("suite")
    if suite in parts[:-1]:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index(suite) :])
    return "/".join(parts[-2:]) if log.startswith("/") or re.match(r"^[A-Za-z]:", log) else log


def scrub(raw: dict[str, Any], *, results_root: Path | str | None = None, keep_host: bool = False) -> dict[str, Any]:
    """A copy of a raw record that can be published (see the module docstring); idempotent."""
    root = str(Path(results_root).resolve()).rstrip("/") + "/" if results_root else None
    environment = dict(raw.get("environment") or {}) if isinstance(raw.get("environment"), dict) else None
    hosts: list[str] = [] if keep_host else machine_hosts()
    if environment is not None:
        host = environment.get("hostname")
        if isinstance(host, str) and host and not keep_host:
            hosts += [host, host.split(".")[0]] if len(host.split(".")[0]) >= 3 else [host]
        if not keep_host:
            environment["hostname"] = None
        if isinstance(environment.get("omp"), dict):
            environment["omp"] = {
                k: v for k, v in environment["omp"].items() if k in ALLOWED_ENV and not is_secret_name(k)
            }
    out = {**raw, **({"environment": environment} if environment is not None else {})}
    if isinstance(out.get("log_path"), str):
        out["log_path"] = _log_path(out, root)
    roots = {"results_root": root, "cache_root": _cache_root()}
    secrets = secret_values()
    scrubbed = _walk(out, lambda text: scrub_text(text, hosts=hosts, secrets=secrets, **roots))
    if keep_host and environment is not None:  # the user's choice, kept verbatim
        scrubbed["environment"]["hostname"] = environment.get("hostname")
    return scrubbed


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield (f"{where} (a key)" if where else "(a key)"), key
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def leaks(raw: Any, hosts: list[str] | None = None) -> list[tuple[str, str]]:
    """(field, what) for every absolute path, host name, IP address or user@host in a raw record."""
    hosts = machine_hosts() if hosts is None else hosts
    found = []
    environment = raw.get("environment") if isinstance(raw, dict) else None
    if isinstance(environment, dict) and environment.get("hostname"):
        found.append(("environment.hostname", f"host name {environment['hostname']!r}"))
    for where, text in _strings(raw, ""):
        if where == "environment.hostname":
            continue
        for kind, pattern in (("absolute path", ABSOLUTE), ("IP address", IPV4), ("user@host", USER_AT_HOST)):
            hit = pattern.search(FILE_URL.sub("file:", text))
            if hit:
                found.append((where, f"{kind} {hit.group(0)!r}"))
        for host in hosts:
            if re.search(rf"(?<![\w-]){re.escape(host)}(?![\w-])", text):
                found.append((where, f"host name {host!r}"))
    return found
