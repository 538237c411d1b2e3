"""Numpydoc completeness of the public API, one test per public class, function and method.

Every object in a public subpackage's ``__all__`` (data constants aside), and
every public method or property its classes define in astromorphnet, needs:

- a summary;
- a ``Parameters`` entry for every parameter of its signature (``*args`` and
  ``**kwargs`` included, written with or without their stars), and no entry
  for a parameter it does not have; the fields of a named tuple may be
  documented as ``Attributes`` instead;
- a ``Returns`` (or ``Yields``) section if it returns a value (functions and
  methods whose own body has ``return <value>`` or ``yield``; properties
  are exempt);
- a ``Raises`` section if its own body raises an exception;
- an ``Examples`` section with a doctest, for classes and module-level
  functions (methods may go without).

A failure lists what the object lacks.
"""

import ast
import enum
import importlib
import inspect
import textwrap
import warnings

import pytest

docscrape = pytest.importorskip("numpydoc.docscrape")

SUBPACKAGES = ("catalog", "models", "preprocessing", "cutouts", "fitting", "metrics",
               "visualization", "estimators", "simulation", "uncertainty", "pipeline",
               "pretrained", "model_selection")


def _methods(cls):
    """``(owner, name, kind, function)`` of the public methods and properties of ``cls``.

    Only those its classes define in astromorphnet (``owner``): not what
    scikit-learn, Keras or the standard library give it.
    """
    for name in sorted(dir(cls)):
        owner = next((klass for klass in inspect.getmro(cls) if name in vars(klass)), None)
        if name.startswith("_") or owner is None or not owner.__module__.startswith(
                "astromorphnet."):
            continue
        member = vars(owner)[name]
        if isinstance(member, property):
            yield owner, name, "property", member.fget
        elif isinstance(member, (staticmethod, classmethod)):
            yield owner, name, "method", member.__func__
        elif inspect.isfunction(member):
            yield owner, name, "method", member


def _public_objects():
    """``(dotted path, kind, object)`` for every object the tests check."""
    seen = set()
    for subpackage in SUBPACKAGES:
        module = importlib.import_module(f"astromorphnet.{subpackage}")
        for name in module.__all__:
            obj = getattr(module, name)
            path = f"astromorphnet.{subpackage}.{name}"
            if inspect.isfunction(obj):
                yield path, "function", obj
            elif inspect.isclass(obj):
                yield path, "class", obj
                for owner, method, kind, function in _methods(obj):
                    if (owner, method) not in seen:
                        seen.add((owner, method))
                        yield f"{path}.{method}", kind, function
            # Anything else is a data constant, documented by a ``#:`` comment.


OBJECTS = list(_public_objects())


def _own_statements(function):
    """The AST nodes of ``function``'s body, not those of functions or classes nested in it."""
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(function)))
    definition = ast.parse(source).body[0]
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    stack = list(ast.iter_child_nodes(definition))
    while stack:
        node = stack.pop()
        if not isinstance(node, nested):
            yield node
            stack.extend(ast.iter_child_nodes(node))


def _returns_value(function):
    return any(isinstance(node, (ast.Yield, ast.YieldFrom))
               or (isinstance(node, ast.Return) and node.value is not None
                   and not (isinstance(node.value, ast.Constant) and node.value.value is None))
               for node in _own_statements(function))


def _raises(function):
    # A bare ``raise`` re-raises what a callee raised: the callee documents it.
    return any(isinstance(node, ast.Raise) and node.exc is not None
               for node in _own_statements(function))


def _signature_names(obj, kind):
    """Parameter names of a function/method (``self``/``cls`` dropped) or a class constructor."""
    signature = inspect.signature(obj)
    names = [p.name for p in signature.parameters.values()]
    if kind == "method" and names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def _documented_names(section):
    """Names of a Parameters/Attributes section; ``x, y : float`` documents both."""
    return {name.strip().lstrip("*") for entry in section for name in entry.name.split(",")}


def _problems(kind, obj):
    text = obj.__doc__  # not inspect.getdoc: a base class's docstring must not count
    if not text or not text.strip():
        return ["no docstring"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            doc = docscrape.NumpyDocString(inspect.cleandoc(text))
        except Exception as exc:  # numpydoc raises on malformed sections
            return [f"the docstring does not parse as numpydoc: {exc}"]
    problems = [f"numpydoc warns: {w.message}" for w in caught]
    if not "".join(doc["Summary"]).strip():
        problems.append("no summary line")

    is_enum = kind == "class" and issubclass(obj, enum.Enum)
    if kind != "property" and not is_enum:
        expected = _signature_names(obj, kind)
        documented = _documented_names(doc["Parameters"]) | _documented_names(
            doc["Other Parameters"])
        if kind == "class" and hasattr(obj, "_fields"):  # a named tuple's fields
            documented |= _documented_names(doc["Attributes"])
        missing = [name for name in expected if name not in documented]
        if missing:
            problems.append(f"Parameters does not document {missing}")
        extra = sorted(documented - set(expected) - _documented_names(doc["Attributes"]))
        if extra:
            problems.append(f"Parameters documents {extra}, which the signature lacks")

    if kind in ("function", "method") and _returns_value(obj) and not (
            doc["Returns"] or doc["Yields"]):
        problems.append("returns a value but has no Returns (or Yields) section")
    # A class raises from its constructor, when astromorphnet defines one.
    function = obj.__init__ if kind == "class" else obj
    if (inspect.isfunction(function) and function.__module__.startswith("astromorphnet.")
            and _raises(function) and not doc["Raises"]):
        problems.append("raises an exception but has no Raises section")
    if kind in ("class", "function") and not any(">>>" in line for line in doc["Examples"]):
        problems.append("no Examples section with a doctest")
    return problems


@pytest.mark.parametrize("kind, obj", [(kind, obj) for _, kind, obj in OBJECTS],
                         ids=[path for path, _, _ in OBJECTS])
def test_docstring_is_complete(kind, obj):
    problems = _problems(kind, obj)
    assert not problems, "incomplete docstring:\n- " + "\n- ".join(problems)
