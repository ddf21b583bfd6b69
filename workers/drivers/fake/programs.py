"""What runs in a fake container: a handful of shell commands over an in-memory file system.

Enough for the contract suite and a demo: ``sh -c`` scripts of ``echo`` (with ``>``, ``>>``
and ``>&2``), ``cat``, ``touch``, ``mkdir``, ``pwd``, ``true``, ``false``, ``exit`` and
``sleep``, joined by ``;``, ``&&`` or ``||``, with ``$NAME`` expanded from the environment. No
time passes: a ``sleep`` shorter than :data:`LONG_SLEEP` seconds returns at once, a longer one
is where the program stays running (a service). Anything else is "not found" (exit code 127).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

LONG_SLEEP = 10.0
"""A ``sleep`` of this many seconds or more keeps the program running."""

SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash")
_OPERATORS = (";", "&&", "||")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


class NotExecutable(Exception):
    """The program's executable does not exist (a container with it cannot start)."""


class ReadOnly(Exception):
    """A write to a read-only mount."""


@dataclass
class Mount:
    """A volume's files (paths relative to the volume) at ``target``."""

    target: str
    files: dict[str, bytes]
    read_only: bool = False

    def relative(self, path: str) -> str | None:
        if path == self.target or path.startswith(self.target.rstrip("/") + "/"):
            return path[len(self.target) :].lstrip("/")
        return None


@dataclass
class FileSystem:
    """An image's files under the container's own writes, with volumes mounted on top."""

    image: Mapping[str, bytes]
    layer: dict[str, bytes] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)

    def read(self, path: str) -> bytes | None:
        for mount in self.mounts:
            rel = mount.relative(path)
            if rel is not None:
                return mount.files.get(rel)
        return self.layer.get(path, self.image.get(path))

    def write(self, path: str, data: bytes, append: bool = False) -> None:
        old = (self.read(path) or b"") if append else b""
        for mount in self.mounts:
            rel = mount.relative(path)
            if rel is not None:
                if mount.read_only:
                    raise ReadOnly(path)
                mount.files[rel] = old + data
                return
        self.layer[path] = old + data


@dataclass
class Outcome:
    """How far a program got: its exit code (``None`` while it runs on) and its output."""

    exit_code: int | None = 0
    chunks: list[tuple[str, bytes]] = field(default_factory=list)
    """Output in the order it was written: ``("stdout" | "stderr", data)``."""

    @property
    def stdout(self) -> bytes:
        return b"".join(data for stream, data in self.chunks if stream == "stdout")

    @property
    def stderr(self) -> bytes:
        return b"".join(data for stream, data in self.chunks if stream == "stderr")


@dataclass
class _Shell:
    fs: FileSystem
    env: Mapping[str, str]
    workdir: str
    out: Outcome = field(default_factory=Outcome)

    def emit(self, data: str | bytes, to_stderr: bool = False) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if raw:
            self.out.chunks.append(("stderr" if to_stderr else "stdout", raw))

    def captured(self, argv: list[str]) -> tuple[int | None, bytes]:
        """Run a command, taking what it writes to stdout instead of emitting it."""
        mark = len(self.out.chunks)
        code = _command(self, argv)
        written = self.out.chunks[mark:]
        self.out.chunks[mark:] = [c for c in written if c[0] == "stderr"]
        return code, b"".join(data for stream, data in written if stream == "stdout")


def run(argv: Sequence[str], fs: FileSystem, env: Mapping[str, str], workdir: str = "/") -> Outcome:
    """Run ``argv`` to its end (or to the long sleep where it stays running).

    Raises :class:`NotExecutable` when ``argv`` names neither a shell nor a known command.
    """
    shell = _Shell(fs, env, workdir or "/")
    if not argv or (argv[0] in SHELLS and len(argv) == 1):
        return shell.out  # a shell without a terminal reads nothing and exits
    if argv[0] in SHELLS:
        script = argv[2] if len(argv) > 2 and argv[1] == "-c" else ""
        _script(shell, script)
        return shell.out
    if posixpath.basename(argv[0]) not in _COMMANDS:
        raise NotExecutable(argv[0])
    shell.out.exit_code = _command(shell, list(argv))
    return shell.out


def _script(shell: _Shell, script: str) -> None:
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    words: list[str] = []
    joiner = ";"
    for token in [*lexer, ";"]:
        if token not in _OPERATORS:
            words.append(token)
            continue
        if words and _should_run(joiner, shell.out.exit_code):
            shell.out.exit_code = _statement(shell, [_expand(w, shell.env) for w in words])
            if shell.out.exit_code is None or words[0] == "exit":
                return
        words, joiner = [], token


def _should_run(joiner: str, last: int | None) -> bool:
    """``a; b`` runs b; ``a && b`` when a succeeded; ``a || b`` when it failed."""
    return joiner == ";" or (joiner == "&&") == (last == 0)


def _expand(word: str, env: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: env.get(m[1] or m[2], ""), word)


def _statement(shell: _Shell, words: list[str]) -> int | None:
    """One command with its redirections: ``> file``, ``>> file``, ``>&2``."""
    target, append, to_stderr, argv = None, False, False, []
    it = iter(words)
    for word in it:
        if word in (">", ">>"):
            target, append = next(it, ""), word == ">>"
        elif word == ">&":
            to_stderr = next(it, "") == "2"
        else:
            argv.append(word)
    if not argv:
        return 0
    if posixpath.basename(argv[0]) not in _COMMANDS:
        shell.emit(f"sh: {argv[0]}: not found\n", to_stderr=True)
        return 127
    if target is None and not to_stderr:
        return _command(shell, argv)
    code, data = shell.captured(argv)
    if target is None:
        shell.emit(data, to_stderr=True)
        return code
    path = _path(shell, target)
    try:
        shell.fs.write(path, data, append)
    except ReadOnly:
        shell.emit(f"sh: can't create {path}: Read-only file system\n", to_stderr=True)
        return 1
    return code


def _path(shell: _Shell, path: str) -> str:
    return posixpath.normpath(posixpath.join(shell.workdir, path))


def _command(shell: _Shell, argv: list[str]) -> int | None:
    return _COMMANDS[posixpath.basename(argv[0])](shell, argv[1:])


def _echo(shell: _Shell, args: list[str]) -> int:
    newline = args[:1] != ["-n"]
    shell.emit(" ".join(args[0 if newline else 1 :]) + ("\n" if newline else ""))
    return 0


def _cat(shell: _Shell, args: list[str]) -> int:
    code = 0
    for name in args:
        data = shell.fs.read(_path(shell, name))
        if data is None:
            shell.emit(f"cat: can't open '{name}': No such file or directory\n", to_stderr=True)
            code = 1
        else:
            shell.emit(data)
    return code


def _touch(shell: _Shell, args: list[str]) -> int:
    for name in args:
        path = _path(shell, name)
        try:
            shell.fs.write(path, b"", append=True)
        except ReadOnly:
            shell.emit(f"touch: {name}: Read-only file system\n", to_stderr=True)
            return 1
    return 0


def _sleep(shell: _Shell, args: list[str]) -> int | None:
    try:
        seconds = float(args[0]) if args else 0.0
    except ValueError:
        return 1
    return None if seconds >= LONG_SLEEP else 0


def _exit(shell: _Shell, args: list[str]) -> int:
    return int(args[0]) if args and args[0].isdigit() else 0


def _pwd(shell: _Shell, args: list[str]) -> int:
    shell.emit(shell.workdir + "\n")
    return 0


_COMMANDS: dict[str, Callable[[_Shell, list[str]], int | None]] = {
    "echo": _echo,
    "cat": _cat,
    "touch": _touch,
    "mkdir": lambda shell, args: 0,
    "true": lambda shell, args: 0,
    "false": lambda shell, args: 1,
    "sleep": _sleep,
    "exit": _exit,
    "pwd": _pwd,
}
