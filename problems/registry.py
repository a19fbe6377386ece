"""The scenario registry: the built-ins, :func:`register`, and plug-ins from entry points.

A user's package announces scenarios in its ``pyproject.toml``::

    [project.entry-points."lossnav.scenarios"]
    logistic = "my_package.scenarios:LogisticScenario"

The group ``lossnav.scenarios`` (:data:`SCENARIO_GROUP`) is read once, the first time the
registry is consulted (:func:`names`, :func:`get`); every value must be a
:class:`problems.scenario.Scenario` subclass with a ``name``. A plug-in that fails to
import, is not a scenario, or clashes with a registered name is skipped with one
:class:`PluginWarning` line naming the entry point and the reason; the built-ins keep
working. :func:`register` raises :class:`RegistrationError` for the same faults (a script
asked for it: it should hear about it).
"""
from __future__ import annotations

import importlib.metadata
import inspect
import warnings

import ocp

from .scenario import Scenario

SCENARIO_GROUP = "lossnav.scenarios"


class RegistrationError(ocp.ProblemError, TypeError):
    """A scenario that cannot be registered: not a Scenario subclass, no name, or a name
    already taken by another class."""


class PluginWarning(UserWarning):
    """An installed plug-in (entry point) was skipped; the message says which and why."""


_SCENARIOS: dict = {}          # name -> Scenario subclass
_ORIGINS: dict = {}            # name -> where it came from ("built-in", "entry point ...", ...)
_discovered = False


def register(cls, origin: str = "") -> type:
    """Register Scenario subclass ``cls`` under ``cls.name``; returns ``cls`` (usable as a
    class decorator). Registering the same class again is a no-op; another class under a
    taken name raises :class:`RegistrationError` (names are unique across built-ins and
    plug-ins, so ``lossnav solve NAME`` means one thing). A class of the same module and
    qualified name replaces the old one (the same plug-in file imported again)."""
    if not (inspect.isclass(cls) and issubclass(cls, Scenario)) or cls is Scenario:
        raise RegistrationError(f"{_describe(cls)} is not a problems.Scenario subclass")
    name = cls.name
    if not isinstance(name, str) or not name.strip() or name != name.strip() or " " in name:
        raise RegistrationError(f"{_describe(cls)} needs a class attribute name = 'a_name' (no spaces)")
    existing = _SCENARIOS.get(name)
    if existing is cls:
        return cls
    if existing is not None and _qualified_name(existing) != _qualified_name(cls):
        raise RegistrationError(
            f"scenario name {name!r} of {_describe(cls)} is taken by {_describe(existing)} "
            f"({_ORIGINS[name]}); rename the class's name attribute")
    _SCENARIOS[name] = cls
    _ORIGINS[name] = origin or f"registered from {cls.__module__}"
    return cls


def registered() -> dict:
    """name → Scenario subclass, built-ins first, then plug-ins (entry points read once)."""
    discover()
    return dict(_SCENARIOS)


def origin(name: str) -> str:
    """Where scenario ``name`` came from: 'built-in', 'entry point lossnav.scenarios: ...'."""
    discover()
    return _ORIGINS[name]


def discover(group: str = SCENARIO_GROUP) -> None:
    """Read the entry points of ``group`` once (later calls do nothing)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for entry_point, value in load_entry_points(group):
        try:
            register(value, origin=f"entry point {group}: {entry_point.name} = {entry_point.value}")
        except RegistrationError as exc:
            warn(f"skipped plug-in {entry_point.name} = {entry_point.value} ({group}): {exc}")


def load_entry_points(group: str) -> list:
    """[(entry_point, loaded object)] for every entry point of ``group`` that imports; one
    PluginWarning per one that does not (its import error, in one line)."""
    out = []
    for entry_point in sorted(importlib.metadata.entry_points(group=group), key=lambda ep: ep.name):
        try:
            out.append((entry_point, entry_point.load()))
        except Exception as exc:  # any error in a third-party import must not stop the built-ins
            warn(f"skipped plug-in {entry_point.name} = {entry_point.value} ({group}): "
                 f"import failed: {type(exc).__name__}: {exc}")
    return out


def warn(message: str) -> None:
    """One PluginWarning line (the CLI prints it as 'lossnav: warning: ...')."""
    warnings.warn(" ".join(message.split()), PluginWarning, stacklevel=3)


def _qualified_name(cls) -> tuple:
    """(module, qualified name): equal for the same class imported twice (a re-loaded plug-in)."""
    return cls.__module__, cls.__qualname__


def _describe(obj) -> str:
    if inspect.isclass(obj):
        return f"class {obj.__module__}.{obj.__qualname__}"
    return f"{type(obj).__name__} {obj!r}"
