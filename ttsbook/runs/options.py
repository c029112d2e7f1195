"""Command-line options generated from config dataclasses: one field, one option.

A field declared with :func:`ttsbook.checks.param` carries its help text and, where its
default's type does not say how to read it, a ``parse`` function and a ``show`` function
(value -> text). A field that holds another config is declared with ``nested=`` and
contributes that config's options.
:func:`options` lists one :class:`Option` per leaf field, addressed by its path
(``("train", "steps")`` is ``--steps``); the parser and the argv that reproduces a config are
both generated from that list, so they cannot drift apart.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping


def plain(text: str) -> str:
    """Help text without reStructuredText markup: ``x`` and :func:`x` become x."""
    return re.sub(r"(:\w+:)?`+([^`]+)`+", r"\2", " ".join(text.split()))


@dataclass(frozen=True)
class Option:
    """One command-line option: the config ``path`` it sets and how to read and show it."""

    path: tuple
    flag: str
    help: str
    parse: Callable
    show: Callable
    choices: tuple | None = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return ".".join(self.path)


def options(config_class, prefix: tuple = ()) -> list[Option]:
    """The options of every :func:`param` field of ``config_class``, nested configs included."""
    found = []
    for f in dataclasses.fields(config_class):
        meta, path = f.metadata, prefix + (f.name,)
        if "nested" in meta:
            found += options(meta["nested"], path)
        elif "help" in meta:
            kind = meta.get("parse", type(f.default))
            found.append(Option(path, meta.get("flag", "--" + f.name.replace("_", "-")),
                                plain(meta["help"]), kind, meta.get("show", str),
                                meta.get("choices"),
                                meta.get("metavar", None if kind is bool or "choices" in meta
                                         else f.name.upper())))
    return found


def _reader(o: Option) -> Callable:
    """``o.parse`` whose failure argparse reports as one line saying what was expected."""
    def read(text: str):
        try:
            return o.parse(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(o.parse, o.metavar)
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    return read


def add_options(parser: argparse.ArgumentParser, opts: Iterable[Option],
                shown: Mapping[tuple, str]) -> None:
    """Add ``opts`` to ``parser``; only options given on the command line reach the namespace.

    ``shown`` maps an option's path to the default written in its help (none if absent).
    """
    for o in opts:
        default = f" (default: {shown[o.path]})" if o.path in shown else ""
        if o.parse is bool:
            parser.add_argument(o.flag, action=argparse.BooleanOptionalAction, dest=o.dest,
                                default=argparse.SUPPRESS, help=o.help + default)
        else:
            parser.add_argument(o.flag, type=_reader(o), choices=o.choices, metavar=o.metavar,
                                dest=o.dest, default=argparse.SUPPRESS, help=o.help + default)


def gather(namespace: argparse.Namespace, opts: Iterable[Option]) -> dict:
    """The given options as a nested dict of config fields, e.g. ``{"train": {"steps": 50}}``."""
    out = {}
    for o in opts:
        if hasattr(namespace, o.dest):
            *parents, leaf = o.path
            node = out
            for name in parents:
                node = node.setdefault(name, {})
            node[leaf] = getattr(namespace, o.dest)
    return out


def to_argv(values: Iterable[tuple[tuple, object]], opts: Iterable[Option]) -> list[str]:
    """Command-line words setting each ``(path, value)``, in order; a bool option appears when
    true."""
    by_path = {o.path: o for o in opts}
    argv = []
    for path, value in values:
        o = by_path[path]
        if o.parse is bool:
            argv += [o.flag] if value else []
        else:
            argv += [o.flag, o.show(value)]
    return argv


def flag_of(arg: str, opts: Iterable[Option]) -> str | None:
    """The option that sets the config field ``arg`` (a dotted path), if any."""
    return next((o.flag for o in opts if o.dest == arg), None)
