"""Package layering: every import of the package points down (or sideways inside a layer) and never loops.

The layers are those written in each package's ``__init__`` docstring and in the README's
"Architecture" section. A new top-level package or module must be given a layer here.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import vm2mail

ROOT = Path(vm2mail.__file__).parent

# Lowest first. An import may point to a lower layer, or to a unit of the same layer (then the
# whole graph must still be acyclic); never to a higher one.
LAYERS: dict[str, set[str]] = {
    "base": {
        "vm2mail",
        "errors",
        "config",
        "pinhash",
        "logsetup",
        "metrics",
        "templating",
        "priority",
        "backoff",
        "phone",
        "longlived",
        "durations",
    },
    "services": {"signing", "crypto", "audio", "twilioapi", "mailstore"},
    "core": {
        "jobs",
        "pipeline",
        "notify",
        "watcher",
        "routing",
        "monitor",
        "readiness",
        "logins",
        "playback",
        "replies",
    },
    "edges": {"telephony", "menu", "smtp", "web", "ops"},
    "top": {"app", "cli", "migrate", "devstack", "lifecycle", "__main__"},
}
ORDER = list(LAYERS)
# Edges translate the wire; they may share only what is named here (the menu is a telephony flow).
# What the web inbox shares with the phone edges (logins, replies, playback) lives in the core.
EDGE_SHARING = {("menu", "telephony")}


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(unit: str) -> str:
    for name, units in LAYERS.items():
        if unit in units:
            return name
    raise AssertionError(f"vm2mail.{unit} belongs to no layer: add it to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    parts = ("vm2mail", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every vm2mail import in a file, lazy ones inside functions too."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "vm2mail":
                found += [(node.lineno, f"vm2mail.{alias.name}") for alias in node.names]
            elif node.module.startswith("vm2mail."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("vm2mail.")]
    return found


def unit_graph() -> tuple[dict[str, set[str]], list[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    wrong: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        source = unit_of(module_name(path))
        for line, module in imports(path):
            target = unit_of(module)
            if module == "vm2mail.__version__" or target == source:
                continue
            graph[source].add(target)
            up = ORDER.index(layer_of(target)) > ORDER.index(layer_of(source))
            edge_to_edge = (
                layer_of(source) == layer_of(target) == "edges" and (source, target) not in EDGE_SHARING
            )
            if up or edge_to_edge:
                where = f"{path.relative_to(ROOT.parent)}:{line}"
                wrong.append(f"{where}: {source} ({layer_of(source)}) imports {module} ({layer_of(target)})")
    return graph, wrong


def test_every_import_points_down() -> None:
    _, wrong = unit_graph()
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_packages_have_no_cycles() -> None:
    graph, _ = unit_graph()
    done: set[str] = set()

    def visit(unit: str, path: list[str]) -> None:
        if unit in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(unit) :], unit]))
        if unit in done:
            return
        for target in sorted(graph.get(unit, ())):
            visit(target, [*path, unit])
        done.add(unit)

    for unit in sorted(graph):
        visit(unit, [])


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The parser finds imports anywhere in a file, so a lazy upward import cannot hide in a function."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from vm2mail.telephony.twiml import say\n    import vm2mail.app\n")
    assert imports(sample) == [(2, "vm2mail.telephony.twiml"), (3, "vm2mail.app")]
    assert ORDER.index(layer_of("telephony")) > ORDER.index(layer_of("mailstore"))


def test_every_package_states_its_layer() -> None:
    for init in sorted(ROOT.glob("*/__init__.py")):
        unit = init.parent.name
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert f"Layer: {layer_of(unit)}" in doc, f"{init}: docstring must say 'Layer: {layer_of(unit)}'"


# -- IMAP: one protocol module parses responses; one connection type owns aioimaplib -------------------
PROTOCOL = "mailstore/protocol.py"
CONNECTION = {"mailstore/connection.py", "mailstore/commands.py", "mailstore/aiofix.py"}
# ``.lines`` elsewhere: YAML line numbers of config keys, not IMAP.
OTHER_LINES = {"config/yamlsource.py"}


def imap_trespasses(path: Path, rel: str | None = None) -> list[str]:
    """Where a module outside the IMAP modules touches aioimaplib or reads response bytes itself."""
    rel = rel or path.relative_to(ROOT).as_posix()
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"vm2mail/{rel}:{getattr(node, 'lineno', 0)}"
        if rel not in CONNECTION and rel != PROTOCOL:
            if isinstance(node, ast.Import) and any(a.name.startswith("aioimaplib") for a in node.names):
                found.append(f"{where}: imports aioimaplib")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aioimaplib"):
                found.append(f"{where}: imports aioimaplib")
            if isinstance(node, ast.Attribute) and node.attr == "client" and _names_conn(node.value):
                found.append(f"{where}: uses the aioimaplib client behind ImapConnection")
            if isinstance(node, ast.Attribute) and node.attr == "lines" and rel not in OTHER_LINES:
                found.append(f"{where}: reads response lines")
        if rel != PROTOCOL and isinstance(node, ast.Call) and _bytes_regex(node):
            found.append(f"{where}: matches a bytes pattern (response parsing belongs in {PROTOCOL})")
    return found


def _names_conn(node: ast.expr) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return "conn" in name.lower()


def _bytes_regex(call: ast.Call) -> bool:
    func = call.func
    is_re = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "re"
    first = call.args[0] if call.args else None
    return is_re and isinstance(first, ast.Constant) and isinstance(first.value, bytes)


def test_only_the_protocol_module_parses_imap_responses() -> None:
    trespasses = [t for path in sorted(ROOT.rglob("*.py")) for t in imap_trespasses(path)]
    assert not trespasses, "IMAP handled outside mailstore/protocol.py and the connection:\n" + "\n".join(
        trespasses
    )


def test_the_imap_checker_sees_a_parser(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import re\nimport aioimaplib\n"
        "def f(conn, response):\n"
        "    re.search(rb'UID (\\d+)', response.lines[0])\n"
        "    return conn.client.noop()\n"
    )
    kinds = sorted(t.split(": ", 1)[1] for t in imap_trespasses(sample, "watcher/sample.py"))
    assert kinds == [
        "imports aioimaplib",
        f"matches a bytes pattern (response parsing belongs in {PROTOCOL})",
        "reads response lines",
        "uses the aioimaplib client behind ImapConnection",
    ]
