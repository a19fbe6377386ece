"""``--plugin FILE.py|module|module:Name``: scenarios and training rules from a user's script.

Installed packages announce plug-ins with entry points (``lossnav.scenarios``: a
:class:`problems.Scenario` subclass, read by :mod:`problems.registry`; ``lossnav.rules``: an
optimizer factory ``(params, lr=...)``, read by :mod:`lossnav.training.rules`). A script
that is not installed is named on the command line instead, on any command::

    lossnav problems --plugin my_scenarios.py            # every Scenario subclass defined there
    lossnav solve logistic --plugin my_scenarios.py:LogisticScenario
    lossnav train --rule heavy_ball --plugin my_rules:heavy_ball ...   # a rule factory

What a spec names:

* ``FILE.py`` or ``module`` alone: the module is imported (a file under the name of its stem)
  and every Scenario subclass *defined in it* (with a ``name``) is registered; the module may
  also call :func:`problems.register` or :func:`lossnav.training.register_rule` itself.
* ``FILE.py:Name`` or ``module:Name``: object ``Name`` of that module: a Scenario subclass is
  registered as a scenario; a ``torch.optim.Optimizer`` subclass or a function is registered
  as the training rule ``Name`` (its ``lr`` default, if any, is the rule's default ``lr``).

:func:`preparse` finds the specs in argv before the parser is built, so the plug-ins'
names appear in the parsers' help and choices; :func:`add_argument` puts ``--plugin`` on
every subcommand parser (the CLI calls it for all of them, including commands added later).
Faults raise :class:`PluginError` with one line: exit 2 for a spec that names no file or
module, 1 for one that fails to import or names the wrong kind of object.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import pathlib
import sys

import problems

OPTION = "--plugin"


class PluginError(ValueError):
    """A ``--plugin`` that cannot be loaded; ``usage`` is True for a malformed spec (exit 2)."""

    def __init__(self, message: str, usage: bool = False):
        super().__init__(message)
        self.usage = usage


def add_argument(parser) -> None:
    """Add ``--plugin`` to a subcommand parser (the value was already loaded by preparse)."""
    parser.add_argument(OPTION, dest="plugins", metavar="FILE.py|module[:Name]", action="append",
                        default=[], help="load scenarios (problems.Scenario subclasses) and training "
                                         "rules (optimizer factories) from a script or module first "
                                         "(repeatable)")


def preparse(argv) -> list:
    """The ``--plugin`` values in ``argv`` (``--plugin X`` and ``--plugin=X``), in order."""
    specs, argv = [], list(argv)
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == OPTION:
            if index + 1 >= len(argv) or argv[index + 1].startswith("-"):
                raise PluginError(f"{OPTION} expects FILE.py, module or module:Name", usage=True)
            specs.append(argv[index + 1])
        elif arg.startswith(OPTION + "="):
            specs.append(arg.split("=", 1)[1])
    return specs


_LOADED: list = []       # the specs loaded in this process, file paths made absolute


def loaded() -> tuple:
    """The ``--plugin`` specs loaded so far, file paths absolute: what a worker process must
    :func:`load_all` to see the same registry (:class:`lossnav.validation.cases.Case` carries them)."""
    return tuple(_LOADED)


def load(spec: str) -> list:
    """Load one ``--plugin`` spec; returns what it added, e.g. ['scenario logistic', 'rule hb'].
    Loading a spec again (or in a process that has it) adds nothing and is not an error."""
    target, _, attribute = _split(spec)
    module = _import(target, spec)
    where = str(pathlib.Path(target).resolve()) if _is_file(target) else target
    absolute = where + (f":{attribute}" if attribute else "")
    if absolute not in _LOADED:
        _LOADED.append(absolute)
    before = set(problems.names())
    if attribute:
        if not hasattr(module, attribute):
            raise PluginError(f"{OPTION} {spec}: {module.__name__} has no attribute {attribute!r}")
        return [_register_object(getattr(module, attribute), attribute, spec)]
    added = []
    for value in vars(module).values():
        if (inspect.isclass(value) and issubclass(value, problems.Scenario) and value is not problems.Scenario
                and value.__module__ == module.__name__ and value.name):
            added.append(_register_object(value, value.__name__, spec))
    added += [f"scenario {name}" for name in problems.names() if name not in before
              and f"scenario {name}" not in added]          # the module registered them itself
    if not added and not _registers_rules(module):
        raise PluginError(f"{OPTION} {spec}: defines no problems.Scenario subclass with a name "
                          "(name a rule factory as module:function)")
    return added


def load_all(specs) -> list:
    """:func:`load` every spec in order; returns everything added."""
    return [item for spec in specs for item in load(spec)]


def load_object(spec: str, option: str, expects: str):
    """The object named by ``FILE.py:name`` or ``module:name`` (for options such as
    ``--optimizer module:factory``); PluginError (usage) when the spec has no ':name'."""
    target, _, attribute = _split(spec)
    if not attribute:
        raise PluginError(f"{option} expects FILE.py:name or module:name ({expects}), got {spec!r}",
                          usage=True)
    module = _import(target, spec, option)
    if not hasattr(module, attribute):
        raise PluginError(f"{option} {spec}: {module.__name__} has no attribute {attribute!r}")
    return getattr(module, attribute)


def _split(spec: str):
    """(file path or module name, ':', attribute); a Windows drive letter is not a separator."""
    text = spec.strip()
    if not text:
        raise PluginError(f"{OPTION} expects FILE.py, module or module:Name, got an empty value", usage=True)
    head, sep, tail = text.rpartition(":")
    if sep and head and tail and "/" not in tail and "\\" not in tail and not tail.endswith(".py"):
        return head, sep, tail
    return text, "", ""


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _import(target: str, spec: str, option: str = OPTION):
    if _is_file(target):
        path = pathlib.Path(target)
        if not path.is_file():
            raise PluginError(f"{option} {spec}: no such file {target}", usage=True)
        name = f"lossnav_plugin_{path.stem}"
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path.resolve()):
            return sys.modules[name]
        loader_spec = importlib.util.spec_from_file_location(name, path.resolve())
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module       # dataclasses and pickling look the module up by name
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise PluginError(f"{option} {spec}: importing {target} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name == target or target.startswith(f"{exc.name}."):
            raise PluginError(f"{option} {spec}: no module named {target!r} (not a file either)",
                              usage=True) from None
        raise PluginError(f"{option} {spec}: importing {target} failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise PluginError(f"{option} {spec}: importing {target} failed: "
                          f"{type(exc).__name__}: {exc}") from exc


def _register_object(value, name: str, spec: str) -> str:
    if inspect.isclass(value) and issubclass(value, problems.Scenario):
        try:
            problems.register(value, origin=f"{OPTION} {spec}")
        except problems.RegistrationError as exc:
            raise PluginError(f"{OPTION} {spec}: {exc}") from None
        return f"scenario {value.name}"
    if _is_rule_factory(value):
        from lossnav.training import rules  # torch: only when a rule is loaded
        try:
            rules.register_plugin_rule(name, value, origin=f"{OPTION} {spec}")
        except ValueError as exc:
            raise PluginError(f"{OPTION} {spec}: {exc}") from None
        return f"rule {name}"
    raise PluginError(f"{OPTION} {spec}: {name} is {_kind(value)}, neither a problems.Scenario "
                      "subclass nor an optimizer factory (params, lr=...) -> torch.optim.Optimizer")


def _is_rule_factory(value) -> bool:
    if inspect.isclass(value):
        torch = sys.modules.get("torch")
        return torch is not None and issubclass(value, torch.optim.Optimizer)
    return inspect.isfunction(value) or inspect.ismethod(value) or isinstance(value, type(len))


def _registers_rules(module) -> bool:
    """Whether importing ``module`` registered a training rule (a plug-in of rules only)."""
    training_rules = sys.modules.get("lossnav.training.rules")
    return training_rules is not None and any(
        getattr(rule.factory, "__module__", None) == module.__name__
        for rule in training_rules.RULES.values())


def _kind(value) -> str:
    if inspect.isclass(value):
        return f"the class {value.__module__}.{value.__qualname__}"
    return f"a {type(value).__name__}"
