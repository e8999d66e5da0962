"""The package layout of docs/ARCHITECTURE.md holds: imports only go down the layers, no module imports itself
back through another, and no source file outgrows one screenful of concepts (about 400 lines)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mmfuse_cli"

# docs/ARCHITECTURE.md, "Layers": a module may import from its own package and from lower layers only
LAYERS = {
    "errors": -1,  # the typed error, imported by the other base modules
    "__init__": 0, "tasks": 0, "files": 0, "limits": 0, "small_files": 0, "locks": 0,
    "io": 1, "volume_io": 1,
    "pairing": 2, "device": 2, "report": 2, "results": 2, "metrics": 2, "degradation": 2,
    "sampling": 3,
    "model": 4,
    "weights": 5,
    "engine": 6,
    "batch": 7,
    "training": 8,
    "commands": 9,
    "cli": 10,
    "__main__": 11,
}  # fmt: skip
MAX_LINES = 400
MAX_FUNCTION_LINES = 80
"""Lines of a function's body (docstring and signature not counted: a command's signature is its flags)."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("mmfuse_cli", *parts))
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every mmfuse_cli module ``path`` imports, at module level or inside functions (``from pkg import sub``
    counts as importing ``pkg.sub``, not ``pkg``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmfuse_cli"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("mmfuse_cli"))
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(path, modules) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_every_top_level_module_has_a_layer():
    assert {_top(name) for name in _modules()} <= set(LAYERS), (
        "add the new module to LAYERS and ARCHITECTURE.md"
    )


def test_imports_only_go_down_the_layers():
    upward = []
    for name, targets in _graph().items():
        for target in targets:
            if _top(target) != _top(name) and LAYERS[_top(target)] >= LAYERS[_top(name)]:
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_source_file_is_over_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def function_lengths(source: str) -> dict[str, int]:
    """``qualified name -> body lines`` of every function in ``source`` (after the docstring, to the end)."""
    lengths = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = f"{prefix}{getattr(child, 'name', '')}"
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                body = child.body
                if (
                    len(body) > 1
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    body = body[1:]  # the docstring
                lengths[name] = (child.end_lineno or 0) - body[0].lineno + 1
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{name}.")

    visit(ast.parse(source), "")
    return lengths


def test_no_function_is_over_80_lines():
    long = {
        f"{p.relative_to(PACKAGE)}:{name}": n
        for p in PACKAGE.rglob("*.py")
        for name, n in function_lengths(p.read_text()).items()
        if n > MAX_FUNCTION_LINES
    }
    assert long == {}


def test_the_function_length_rule_counts_bodies_not_signatures():
    source = 'def f(\n    a=1,\n    b=2,\n):\n    """Doc."""\n    x = a\n    return x + b\n\n\nclass C:\n    def g(self):\n        pass\n'
    assert function_lengths(source) == {"f": 2, "C.g": 1}


def test_the_layer_checker_sees_a_real_upward_import(tmp_path):
    """The checker is not vacuous: the engine really imports the sampler, and the CLI the batch pipeline."""
    graph = _graph()
    assert "mmfuse_cli.sampling.sampler" in graph["mmfuse_cli.engine.backend"]
    assert "mmfuse_cli.batch.run" in graph["mmfuse_cli.commands.run"]
