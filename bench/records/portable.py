"""Records that can leave the machine that made them: no absolute path, no host name, no secret.

Works on raw record dicts (the JSON), so the schema migration, `ResultStore.write` and `bench publish`
share one scrub. Rules, applied to every string of a record:

* a path inside the model cache becomes `cache:<key>` (e.g. `cache:converted/SmolLM2-...-b179c9523d0e`);
* a path inside an installed package becomes `site-packages/<package>/...`, one inside this checkout
  `bench/...` (relative to the checkout; a module or a file the package ships), `log_path` is relative to
  the results root (`<suite>/<machine>/logs/<run_id>.log`);
* any other absolute path (a whole value, or one in quotes or parentheses: spaces and all) keeps its last
  two components below a home folder's owner (`/home/alice/data/x.jsonl` -> `data/x.jsonl`,
  `/Users/bob/x.jsonl` -> `x.jsonl`: never a user name); a Windows share
  (`\\\\server\\share\\x`) loses its server and share, `~alice/x` becomes `~/x`; the file's sha256, where the
  record has one, still identifies it;
* `environment.hostname` is dropped (None), and so is every other occurrence of it, unless the user
  opted in (`bench run --record-host`);
* environment variables: only the names in ALLOWED_ENV are recorded, never a name that looks secret
  (`*_TOKEN`, `*_KEY`, `*_SECRET`, `*_PAT`, passwords, credentials, `*_DSN`, `DATABASE_URL`), and the value of
  any secret-looking variable of this process, and the password of a credential URL in any variable
  (`HTTPS_PROXY=http://user:password@proxy`), is replaced by `<redacted>` wherever it appears;
* whoever's they are, credentials in a URL (`http://user:password@host` -> `http://<redacted>@host`) and
  tokens of a known shape (`hf_…`, `ghp_…`, `github_pat_…`, `glpat-…`, `AKIA…`, `sk-…`, `xox?-…`, `AIza…`,
  a bearer token, a private key) are redacted.

What a scrub leaves that would still leak is `bench/records/leaks.py`'s to find. Imports no torch.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping
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
# A name is secret when one of its `_`-separated parts is a secret word (`GITHUB_PAT`, `HF_TOKEN`,
# `SENTRY_DSN`), it ends in PASS or AUTH (`SMTP_PASS`), or it says password, API key, credential or
# database URL anywhere (`DBPASSWORD`, `OPENAI_APIKEY`, `GOOGLE_APPLICATION_CREDENTIALS`, `DATABASE_URL`)
SECRET_PARTS = frozenset(
    {"TOKEN", "KEY", "SECRET", "PAT", "PASSWD", "PASSWORD", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS", "DSN", "APIKEY"}
)
SECRET_NAME = re.compile(r"(^|_)(PASS|AUTH)$|PASSWORD|PASSPHRASE|API_?KEY|CREDENTIAL|DATABASE_URL", re.I)
REDACTED = "<redacted>"
HOST = "<host>"
# An absolute POSIX path or a Windows drive path, also after a prefix (`jsonl:/data/x.jsonl`), not inside a URL
# (`https://x/y`: a slash before a slash is no path's start), a ratio (`tokens/s`), a closing tag (`</s>`, a
# stop sequence of generative tasks) or a regular expression (`^/api/v1$`); a path has two parts at least
# (`/home/x`): `3 /4`, `tokens /s` and `cd /root` name no folder of anyone's (ABSOLUTE_PARTS)
ABSOLUTE = re.compile(r"(?<![\w/.~%<^-])(?:/|[A-Za-z]:[\\/])(?=[^\s/])[^\s\"'<>|;,()\[\]{}`]*")
ABSOLUTE_PARTS = 2
# A value that is one path as a whole, spaces and all (`/data/Alice Smith/x.jsonl`, `jsonl:C:\\My Data\\x.jsonl`):
# a spec's path fields. ABSOLUTE stops at a space, and would keep `Alice Smith/x.jsonl` of it; a message
# (`/x/y: no such file`) is no path as a whole (SENTENCE), and its quoted paths are QUOTED_PATH's
WHOLE_PATH = re.compile(r"([A-Za-z][\w+.-]+:)?((?:/|[A-Za-z]:[\\/])[^\n\r\t\"'<>|;`]*)")  # `jsonl:`, not `D:`
SENTENCE = re.compile(r": |, |[.:]$")
# A path in a message whose first folder holds a space (`cannot open /My Data/alice/x.jsonl: no such file`),
# where ABSOLUTE sees the one-part `/My`, which is no path: that folder (no `:` or `,` in it, as a sentence
# has), then folders and a file name without spaces (a message's words after a path stay its words)
SPACED_PATH = re.compile(
    r"(?<![\w/.~%<^-])(?:/|[A-Za-z]:[\\/])(?=[^\s/\\])[^\s/\\\"'<>|;,:()\[\]{}`]+(?: [^\s/\\\"'<>|;,:()\[\]{}`]+)+"
    r"[\\/][^\s\"'<>|;,()\[\]{}`]*"
)
# A path between quotes or in parentheses in a message (`No such file or directory: '/data/Alice Smith/x.jsonl'`,
# `task:sums (/data/Alice Smith/x.jsonl)`): group 2 or 3
QUOTED_PATH = re.compile(
    r"(?<![\w])(['\"])((?:/|[A-Za-z]:[\\/])[^'\"\n\r]*?)\1|(?<=\()((?:/|[A-Za-z]:[\\/])[^()\n\r]*?)(?=\))"
)
# A Windows share, `\\server\share\folder` (also with its backslashes doubled, as a repr shows them)
UNC = re.compile(r"(?<![\w\\])\\{2,}[A-Za-z0-9][\w.$-]*(?:\\+[^\s\\\"'<>|;,()\[\]{}`]+)+")
# `~alice/x`: the home folder of a named user (`~/x` names nobody)
TILDE_USER = re.compile(r"(?<![\w~/])~[A-Za-z_][\w.-]*(?=[/\\])")
# A file URL names a path on the machine that wrote it: `file:///home/x/y` is read as the path `/home/x/y`
FILE_URL = re.compile(r"\bfile://(?:localhost)?(?=/)", re.I)
# `scheme://user:password@host`: the user and password are redacted, the scheme and host kept
CREDENTIAL_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@:<>\"']+:[^\s/?#@<>\"']+@")
# token shapes of known services, whoever holds them: Hugging Face, GitHub, GitLab, AWS, OpenAI-style, Slack,
# Google, a bearer token, a private key
TOKEN = re.compile(
    r"\bhf_(?=[A-Za-z]*\d)[A-Za-z0-9]{16,}\b|\bgh[pousr]_(?=[A-Za-z]*\d)[A-Za-z0-9]{16,}\b|\bgithub_pat_\w{20,}"
    r"|\bglpat-[\w-]{20,}|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b|\bsk-(?=[\w-]{20})(?=[A-Za-z_-]*\d)[\w-]+"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}|\bAIza[\w-]{35}|(?<=[Bb]earer )[\w.~+/-]{20,}=*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----)?"
)
CACHE = re.compile(r"^.*?/(?:\.cache/fine-tune-bench|\.bench-cache|fine-tune-bench-cache)/")
SITE = re.compile(r"^.*?/(?:site|dist)-packages/")
# a file of this package in another checkout (`/opt/ci/src/bench/records/store.py`, a traceback's line):
# `bench/` and a module or a sub-package's file, never a user's folder that happens to be named bench
# (`/mnt/nfs/bench/clients/acme/x.jsonl` keeps its last two parts as any path)
CHECKOUT = re.compile(
    r"^.*?/(bench/(?:(?:(?:cli|run|training|analysis|estimate|records|models|strategies|tasks|evaluate|measure"
    r"|report|backends|executors|recommend)/)?[\w.-]+\.py(?::\d+)?|report/templates/.+|models/presets/.+))$"
)
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # this checkout (bench/records/portable.py)
HOMES = frozenset({"home", "users"})  # /home/<user>, /Users/<user>, C:\Users\<user>: the owner is left out


def is_secret_name(name: str) -> bool:
    """`HF_TOKEN`, `WANDB_API_KEY`, `GITHUB_PAT`, `DB_PASSWORD`, `DATABASE_URL`, ... (never recorded)."""
    return bool(SECRET_NAME.search(name)) or any(part in SECRET_PARTS for part in name.upper().split("_"))


def allowed_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables a record may hold: the allow-list, minus anything secret-looking."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in ALLOWED_ENV if name in environ and not is_secret_name(name)}


def _url_passwords(value: str) -> set[str]:
    """The `user:password` and the password of each credential URL in a value (`HTTPS_PROXY=http://u:p@proxy`)."""
    found = set()
    for match in CREDENTIAL_URL.finditer(value):
        userinfo = match.group(0)[len(match.group(1)) : -1]
        found |= {userinfo, userinfo.split(":", 1)[1]}
    return found


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of this process's secret-looking variables, and passwords in any variable's URL (a proxy's),
    long enough not to match by chance."""
    environ = os.environ if environ is None else environ
    found = {v for k, v in environ.items() if is_secret_name(k)}
    found |= {password for value in environ.values() if "@" in value for password in _url_passwords(value)}
    return sorted((v for v in found if len(v) >= 8), key=len, reverse=True)


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


def _parts(unix: str) -> list[str]:
    """The folders and file of an absolute path (`/`-separated), without its drive or share."""
    if unix.startswith("//"):  # a Windows share: the server and the share name are left out
        return [part for part in unix.split("/") if part][2:]
    return [part for part in re.split(r"/+", unix.split(":", 1)[-1] if re.match(r"^[A-Za-z]:", unix) else unix) if part]


def portable_path(path: str, *, results_root: str | None = None, cache_root: str | None = None) -> str:
    """One absolute path as it may appear in a record: a cache key, a package- or checkout-relative
    path, a path relative to the results root, or its last two components below a home folder's owner
    (`/home/alice/train.jsonl` -> `train.jsonl`, `/home/alice` -> `~`: no user name)."""
    unix = re.sub(r"^\\\\+", "//", path).replace("\\", "/")
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
    parts = _parts(unix)
    home = next((index for index, part in enumerate(parts[:-1]) if part.lower() in HOMES), None)
    if home is not None:
        return "/".join(parts[home + 2 :][-2:]) or "~"
    return "/".join(parts[-2:]) or "."


def is_path(text: str) -> bool:
    """An absolute path names a folder: two parts at least (`/home/x`, not `/s`, `/4` or `/root`)."""
    return len(_parts(text.replace("\\", "/"))) >= ABSOLUTE_PARTS


def scrub_text(text: str, *, hosts: list[str] = (), secrets: list[str] = (), **roots: str | None) -> str:
    """Secret values, credentials in URLs and tokens redacted; host names replaced; every absolute path
    (a Windows share too) made portable and a named user's `~alice/` made `~/`."""
    text = FILE_URL.sub("file:", _redacted(text, hosts, secrets))
    whole = WHOLE_PATH.fullmatch(text)
    if whole and " " in text and is_path(whole.group(2)) and not SENTENCE.search(text):
        return (whole.group(1) or "") + portable_path(whole.group(2), **roots)
    text = QUOTED_PATH.sub(lambda found: _quoted_path(found, roots), text)
    text = SPACED_PATH.sub(lambda found: _cut_path(found, roots), text)
    text = UNC.sub(lambda found: portable_path(found.group(0), **roots), text)
    text = TILDE_USER.sub("~", text)
    return ABSOLUTE.sub(lambda found: _cut_path(found, roots), text)


def _cut_path(found: re.Match[str], roots: dict[str, str | None]) -> str:
    """An ABSOLUTE or SPACED_PATH match made portable where it is a path (two parts at least)."""
    return portable_path(found.group(0), **roots) if is_path(found.group(0)) else found.group(0)


def _quoted_path(found: re.Match[str], roots: dict[str, str | None]) -> str:
    """A QUOTED_PATH match made portable, its quotes kept (parentheses are outside the match)."""
    quote, path = found.group(1) or "", found.group(2) or found.group(3)
    return quote + portable_path(path, **roots) + quote if is_path(path) else found.group(0)


# a home folder and its owner: /home/alice, /Users/bob, C:\Users\carol (what follows is kept)
HOME_OWNER = re.compile(r"(?<![\w/.~%<^-])(?:/home/|/Users/|[A-Za-z]:[\\/]Users[\\/])[^/\\\s\"'<>|;,()\[\]{}`]+")


def scrub_document(text: str) -> str:
    """Text an author wrote that goes into a report (a suite's YAML, notes): this process's secrets,
    credentials and tokens redacted, this machine's name replaced, a home folder's owner left out
    (`/home/alice/data/x.jsonl` -> `~/data/x.jsonl`, `~alice/` -> `~/`). Other paths stay as written: in an
    author's commands (`tar -C /tmp/u && cp -r /tmp/u/records/x/* results/x/`) a path cut to its last two
    parts changes what they say; `bench publish` checks what reaches a site (`leaks`)."""
    return HOME_OWNER.sub("~", TILDE_USER.sub("~", _redacted(text, machine_hosts(), secret_values())))


# a suite's line whose value is a file or folder (`path: /srv/data/x.jsonl`, `- jsonl: "/a b/x.jsonl"  # note`)
SUITE_PATH_LINE = re.compile(
    r"^(\s*(?:-\s+)?(?:path|gguf|config|chat_template|jsonl):[ \t]*)(['\"]?)([^'\"#\n]+?)\2([ \t]*(?:#.*)?)$", re.M
)


def scrub_suite(text: str) -> str:
    """A suite's YAML as a report embeds it: scrub_document, and the absolute path a path field names cut as
    its records cut it (`path: /srv/Alice Smith/data/x.jsonl` -> `path: data/x.jsonl`): a report travels."""

    def portable(found: re.Match[str]) -> str:
        head, quote, value, tail = found.groups()
        whole = WHOLE_PATH.fullmatch(value)
        if whole is None or whole.group(1) or not is_path(value):  # relative, `~/...` or not a path
            return found.group(0)
        return f"{head}{quote}{portable_path(value)}{quote}{tail}"

    return scrub_document(SUITE_PATH_LINE.sub(portable, text))  # cut first: `/home/Alice Smith/` is one owner


def _redacted(text: str, hosts: Iterable[str], secrets: Iterable[str]) -> str:
    """Secret values, credentials in URLs and tokens redacted, host names replaced: what both scrubs do
    before they treat paths their own way."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = CREDENTIAL_URL.sub(lambda found: found.group(1) + REDACTED + "@", text)
    text = TOKEN.sub(REDACTED, text)
    for host in hosts:
        text = re.sub(rf"(?<![\w-]){re.escape(host)}(?![\w-])", HOST, text)
    return text


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
    return portable_path(log) if log.startswith("/") or re.match(r"^[A-Za-z]:", log) else log


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
