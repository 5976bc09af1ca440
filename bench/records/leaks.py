"""What in a record or an author's text would still tell where, who or how to log in, after a scrub
(bench/records/portable.py) or where none can decide for the user: `bench publish` refuses it.

`leaks()` finds what a scrub cannot decide for the user, and what it should have removed: an absolute path,
a network share, a host name (this machine's, or one of a private network: `*.corp`, `*.internal`, `*.lan`),
an IPv4 or IPv6 address, a `user@host` e-mail address, a named user's `~alice/`, credentials in a URL or a
token. Harmless look-alikes pass: `3 /4`, `tokens /s`, `/root`, `^/api/v1$` (an absolute path has two parts
at least), `release 1.2.3.4` (a version), `peft@v0.13.0`, `lora@r8.a16` (labels: their host is no domain).
An e-mail address names a person, so it is a leak, unless its mailbox is an organisation's (`team@arxiv.org`,
`support@…`: ROLE_MAILBOXES).
Imports no torch.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator
from typing import Any

from bench.records.portable import (
    ABSOLUTE,
    CREDENTIAL_URL,
    FILE_URL,
    SPACED_PATH,
    TILDE_USER,
    TOKEN,
    UNC,
    is_path,
    machine_hosts,
)

IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)")  # a full stop may end its sentence
# what a version number follows (`release 1.2.3.4`, `==1.2.3.4`): then four numbers are no IP address
VERSION_BEFORE = re.compile(r"(?:\b(?:release|version|ver|rev|revision|tag|build|v)[\s:=]*|[=<>~!]=?\s*)$", re.I)
IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
# user@host where the host is a domain (`alice@gpu-node.example.org`); `peft@v0.13.0` and `lora@r8.a16` are labels
USER_AT_HOST = re.compile(r"(?<![\w.+<-])[A-Za-z0-9_][\w.+-]*@[A-Za-z0-9][\w-]*(?:\.[\w-]+)*\.[A-Za-z]{2,}\b(?![.-]\w)")
# an organisation's mailbox names no person (`team@arxiv.org`, `git@github.com`); any other address does
ROLE_MAILBOXES = frozenset(
    {"team", "info", "contact", "support", "help", "hello", "admin", "security", "press", "noreply", "no-reply"}
    | {"git", "office", "feedback", "abuse", "postmaster", "webmaster", "maintainers", "research", "licensing"}
)
# host names of a private network: `gpu-box-17.corp.example.com`, `fileserver.corp`, `db.internal`
INTERNAL_HOST = re.compile(
    r"(?<![\w.-])[A-Za-z0-9][\w-]*(?:\.[\w-]+)*\.(?:corp|internal|intranet|intra|lan|localdomain)(?:\.[\w-]+)*\b", re.I
)


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


def _masked(secret: str) -> str:
    """A secret as a refusal names it: its first characters only (the message may land in a CI log)."""
    return repr(secret[:6] + "…")


def _ipv4(text: str) -> Iterator[str]:
    """Four numbers up to 255 that no version word precedes (`release 1.2.3.4` is a version)."""
    for found in IPV4.finditer(text):
        numbers = [int(number) for number in found.group(0).split(".")]
        if max(numbers) <= 255 and not VERSION_BEFORE.search(text[max(0, found.start() - 20) : found.start()]):
            yield found.group(0)


def _ipv6(text: str) -> Iterator[str]:
    """IPv6 addresses with a digit in them (`fe80::1ff:fe23:4567:890a`; not `::1`, not a clock's `12:30:45`)."""
    for found in IPV6.finditer(text):
        try:
            address = ipaddress.IPv6Address(found.group(0))
        except ValueError:
            continue
        if not address.is_loopback and not address.is_unspecified and re.search(r"\d", found.group(0)):
            yield found.group(0)


def _emails(text: str) -> Iterator[str]:
    """user@domain, unless the user is an organisation's mailbox (ROLE_MAILBOXES)."""
    for found in USER_AT_HOST.finditer(text):
        if found.group(0).split("@", 1)[0].lower() not in ROLE_MAILBOXES:
            yield found.group(0)


# a cheap first look: a text none of whose characters could start a leak is not read by every pattern
SUSPECT = re.compile(
    r"[/\\@~]|\d\.\d|:[0-9A-Fa-f]*:|\.(?:corp|internal|intranet|intra|lan|localdomain)\b|hf_|gh[pousr]_|github_pat_|glpat-"
    r"|AKIA|ASIA|sk-|xox|AIza|bearer |PRIVATE KEY",
    re.I,
)


def _absolute_paths(text: str) -> Iterator[re.Match[str]]:
    """ABSOLUTE's matches, then SPACED_PATH's (a first folder with a space in it)."""
    yield from ABSOLUTE.finditer(text)
    yield from SPACED_PATH.finditer(text)


@functools.lru_cache(maxsize=65536)  # records repeat their strings (labels, units, metric names)
def _pattern_leaks(text: str) -> tuple[str, ...]:
    if not SUSPECT.search(text):
        return ()
    text = FILE_URL.sub("file:", text)
    finders = (
        ("credentials in URL", lambda t: (repr(m.group(1) + "…@") for m in CREDENTIAL_URL.finditer(t))),
        ("token", lambda t: (_masked(m.group(0)) for m in TOKEN.finditer(t))),
        ("absolute path", lambda t: (repr(m.group(0)) for m in _absolute_paths(t) if is_path(m.group(0)))),
        ("network share", lambda t: (repr(m.group(0)) for m in UNC.finditer(t))),
        ("home folder of a named user", lambda t: (repr(m.group(0)) for m in TILDE_USER.finditer(t))),
        ("IP address", lambda t: map(repr, _ipv4(t))),
        ("IPv6 address", lambda t: map(repr, _ipv6(t))),
        ("user@host", lambda t: map(repr, _emails(t))),
        ("internal host name", lambda t: (repr(m.group(0)) for m in INTERNAL_HOST.finditer(t))),
    )
    return tuple(f"{kind} {hit}" for kind, finder in finders for hit in [next(iter(finder(text)), None)] if hit)


def text_leaks(text: str, hosts: list[str] | None = None) -> list[str]:
    """What in one text would tell where, who or how to log in: the first of each kind (see the module
    docstring); `hosts`: the host names to look for (default: this machine's)."""
    hosts = machine_hosts() if hosts is None else hosts
    found = list(_pattern_leaks(text))
    named = [host for host in hosts if host in text and re.search(rf"(?<![\w-]){re.escape(host)}(?![\w-])", text)]
    return found + [f"host name {host!r}" for host in named]


def leaks(raw: Any, hosts: list[str] | None = None) -> list[tuple[str, str]]:
    """(field, what) for every absolute path, host name, IP address, user@host, credential or token in a raw record."""
    hosts = machine_hosts() if hosts is None else hosts
    found = []
    environment = raw.get("environment") if isinstance(raw, dict) else None
    if isinstance(environment, dict) and environment.get("hostname"):
        found.append(("environment.hostname", f"host name {environment['hostname']!r}"))
    for where, text in _strings(raw, ""):
        if where != "environment.hostname":
            found += [(where, what) for what in text_leaks(text, hosts)]
    return found
