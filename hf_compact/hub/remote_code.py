"""The modelling code that travels with a saved diffusers model or pipeline, for `trust_remote_code=True` loading.

diffusers loads custom code one file per component: a model's `config.json` names it in `auto_map`
(`{"AutoModel": "autoencoder_vitok.AutoencoderViTok"}`), a pipeline's `model_index.json` names the pipeline file and
each custom component's file (`"vae": ["autoencoder_vitok", "AutoencoderViTok"]`, the file in `vae/`). Of the files
a custom file imports, diffusers copies only its own relative imports, one level deep, and a package layout with
`from ..layers import ...` does not survive that. So each class travels as one self-contained file:
:func:`single_file_source` inlines the modules of this package that the class needs, in dependency order, and
keeps every other import. Nothing is copied by hand: the file is rebuilt from the installed package at each save.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from diffusers import DiffusionPipeline, ModelMixin

_PACKAGE = "hf_compact"
# What diffusers' `dynamic_modules_utils` scans a file for (line by line, docstrings included).
_RELATIVE_IMPORT = re.compile(r"^\s*(?:import\s+\.\S+\s*$|from\s+\.\S+\s+import)", re.MULTILINE)
_PACKAGE_IMPORT = re.compile(rf"^\s*(?:import|from)\s+{_PACKAGE}\b", re.MULTILINE)


@dataclass
class _InlinedModule:
    name: str
    body: str
    imports: dict[str, tuple[str, str]]  # bound name -> (statement, what it binds), for the file's header
    defined: set[str]
    dependencies: list[str] = field(default_factory=list)


def _is_package_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").partition(".")[0] == _PACKAGE
    return isinstance(node, ast.Import) and any(alias.name.partition(".")[0] == _PACKAGE for alias in node.names)


def _source(module_name: str) -> tuple[list[str], ast.Module]:
    """The lines of `module_name`'s file and their syntax tree, read together."""
    text = Path(sys.modules[module_name].__file__).read_text()
    return text.splitlines(), ast.parse(text)


def _absolute_module(module_name: str, node: ast.ImportFrom) -> str:
    module = sys.modules[module_name]
    package = module_name if hasattr(module, "__path__") else module_name.rpartition(".")[0]
    return importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level else node.module


def _defining_module(module_name: str, name: str) -> str:
    """The module of this package whose source binds `name` at top level (following re-exports of `__init__`s)."""
    importlib.import_module(module_name)
    for node in _source(module_name)[1].body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return module_name
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
            isinstance(target, ast.Name) and target.id == name for target in targets
        ):
            return module_name
        if isinstance(node, ast.ImportFrom) and _is_package_import(node):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _defining_module(_absolute_module(module_name, node), alias.name)
    raise ValueError(f"{module_name} does not define {name!r}: cannot inline it into a single file.")


def _bound_name(alias: ast.alias, node: ast.stmt) -> tuple[str, str]:
    if isinstance(node, ast.Import):
        return alias.asname or alias.name.partition(".")[0], alias.name if alias.asname else alias.name.split(".")[0]
    return alias.asname or alias.name, f"{'.' * node.level}{node.module}.{alias.name}"


def _inline(module_name: str) -> _InlinedModule:
    """`module_name`'s source without its docstring, `__all__` and imports of this package (those become the
    dependencies; `from .x import a as b` becomes `b = a`); other top-level imports move to the file's header."""
    lines, tree = _source(module_name)
    replaced: dict[int, tuple[int, list[str]]] = {}  # first line -> (last line, replacement lines)
    inlined = _InlinedModule(module_name, "", {}, set())
    for index, node in enumerate(tree.body):
        drop = (
            (index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))  # docstring
            or (isinstance(node, ast.ImportFrom) and node.module == "__future__")
            or (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"])
        )
        if drop:
            replaced[node.lineno] = (node.end_lineno, [])
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and _is_package_import(node):
            if isinstance(node, ast.Import):
                raise ValueError(f"{module_name}, line {node.lineno}: use `from ... import name` for {_PACKAGE}.")
            source = _absolute_module(module_name, node)
            aliases = []
            for alias in node.names:
                defining = _defining_module(source, alias.name)
                inlined.dependencies.append(defining)
                if alias.asname and alias.asname != alias.name:
                    aliases.append(f"{alias.asname} = {alias.name}")
            replaced[node.lineno] = (node.end_lineno, aliases)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            statement = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            for alias in node.names:
                name, binds = _bound_name(alias, node)
                inlined.imports[name] = (statement, binds)
            replaced[node.lineno] = (node.end_lineno, [])
        else:
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)) and _is_package_import(inner):
                    raise ValueError(
                        f"{module_name}, line {inner.lineno}: a nested import of {_PACKAGE} cannot be inlined; "
                        "import at the top of the module."
                    )
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inlined.defined.add(node.name)
            for target in node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]:
                if isinstance(target, ast.Name):
                    inlined.defined.add(target.id)
    body, line_number = [], 1
    while line_number <= len(lines):
        if line_number in replaced:
            last, replacement = replaced[line_number]
            body += replacement
            line_number = last + 1
        else:
            body.append(lines[line_number - 1])
            line_number += 1
    inlined.body = "\n".join(body).strip("\n")
    return inlined


def _is_package_class(cls: type) -> bool:
    return cls.__module__.partition(".")[0] == _PACKAGE


def _defining_module_of_class(cls: type) -> str:
    # `__module__` can be rewritten for diffusers' loader (see hf_compact.dit.diffusers_registration); the methods
    # keep the module that defines them.
    for value in vars(cls).values():
        function = getattr(value, "fget", None) or getattr(value, "__func__", value)
        if getattr(function, "__qualname__", "").startswith(f"{cls.__qualname__}."):  # defined in the class body
            return _defining_module(function.__module__, cls.__name__)
    return _defining_module(cls.__module__, cls.__name__)


def code_file_name(cls: type) -> str | None:
    """The stem of the file that `cls` is saved with, its module's name (e.g. `"autoencoder_vitok"`); `None` for
    the classes of other libraries (e.g. diffusers' `DiTTransformer2DModel`), which travel without code."""
    if not _is_package_class(cls):
        return None
    return _defining_module_of_class(cls).rpartition(".")[2]


def single_file_source(cls: type) -> str:
    """One self-contained Python file that defines `cls`: the modules of this package it needs (transitively), in
    dependency order, under one header of imports of other libraries (torch, diffusers, ...).

    Raises:
        ValueError: the code cannot be put in one file: two inlined modules bind one name differently, a module
            imports this package inside a function, or a line would make diffusers look for a file beside it.
    """
    order: list[_InlinedModule] = []
    visiting: set[str] = set()

    def visit(module_name: str) -> None:
        if module_name in visiting or any(module.name == module_name for module in order):
            return
        visiting.add(module_name)
        module = _inline(module_name)
        for dependency in module.dependencies:
            visit(dependency)
        order.append(module)

    visit(_defining_module_of_class(cls))
    imports: dict[str, tuple[str, str]] = {}
    defined: dict[str, str] = {}
    for module in order:
        for name, (statement, binds) in module.imports.items():
            if imports.get(name, (None, binds))[1] != binds or name in defined:
                raise ValueError(f"cannot inline {module.name} into one file with the others: {name!r} clashes.")
            imports[name] = (statement, binds)
        for name in module.defined:
            if name in defined or name in imports:
                raise ValueError(
                    f"cannot inline {module.name} into one file: {name!r} is also defined by {defined.get(name)}."
                )
            defined[name] = module.name
    from hf_compact import __version__

    header = [
        f"# {cls.__name__}, saved by hf-compact {__version__} as one file so that diffusers loads it with",
        "# `trust_remote_code=True` without hf-compact installed. Inlined modules, in this order:",
        *(f"#   {module.name}" for module in order),
        "from __future__ import annotations",
        "",
        *dict.fromkeys(statement for statement, _ in imports.values()),
    ]
    sections = [f"# ---- {module.name}\n\n{module.body}" for module in order]
    source = "\n".join(header) + "\n\n\n" + "\n\n\n".join(sections) + "\n"
    for pattern in (_RELATIVE_IMPORT, _PACKAGE_IMPORT):
        match = pattern.search(source)
        if match:
            raise ValueError(f"single file of {cls.__name__}: diffusers would read {match.group(0)!r} as an import.")
    return source


def _write_code(cls: type, folder: Path) -> str:
    stem = code_file_name(cls)
    (folder / f"{stem}.py").write_text(single_file_source(cls))
    return stem


def _add_auto_map(config_path: Path, stem: str, class_name: str) -> None:
    config = json.loads(config_path.read_text())
    config["auto_map"] = {"AutoModel": f"{stem}.{class_name}"}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_model_code(model: ModelMixin, folder: Path) -> None:
    """Adds the code of a `save_pretrained` folder of `model`: `<module>.py` and `auto_map` in `config.json`."""
    _add_auto_map(folder / "config.json", _write_code(type(model), folder), type(model).__name__)


def write_pipeline_code(pipeline: DiffusionPipeline, folder: Path) -> None:
    """Adds the code of a `save_pretrained` folder of `pipeline`: the pipeline's file at the top, each custom
    component's file in its subfolder, and `[file, class]` entries in `model_index.json` (the pipeline loader needs
    no `auto_map` in the components' configs, and diffusers would warn about it at every load)."""
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["_class_name"] = [_write_code(type(pipeline), folder), type(pipeline).__name__]
    for name, component in pipeline.components.items():
        if _is_package_class(type(component)):
            index[name] = [_write_code(type(component), folder / name), type(component).__name__]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
