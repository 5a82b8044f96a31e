"""The dependency rules of DESIGN.md, read from the source with `ast` (nothing is imported):

- the apps point one way: console -> graduation -> alerts -> agents, never backwards;
- `config` and the shared `core` sit below every app and import none;
- no import cycle between project modules, counting the imports inside functions;
- no project import inside a function, except the few of ALLOWED_INSIDE_FUNCTIONS (each with
  its reason): a cycle is broken by moving code, not by hiding an import.
"""

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ["agents", "alerts", "graduation", "tournaments", "console"]  # bottom to top
SHARED = ["config", "core"]  # below every app, importable by all; they import no app
SKIP_DIRS = {"migrations", "tests", "bench", "var", "templates", "node_modules", "__pycache__"}

# (importing module, imported module): why it is imported inside a function.
ALLOWED_INSIDE_FUNCTIONS = {
    ("agents.apps", "agents.observability"):
        "AppConfig.ready(): it reads models, which need the app registry",
    ("alerts.apps", "agents.signals"): "AppConfig.ready(): subscribing to agents' signals",
    ("alerts.apps", "alerts.receivers"): "AppConfig.ready(): the receivers import models and services",
    ("alerts.apps", "alerts.signals"): "AppConfig.ready(): subscribing the notifier to alert_raised",
    ("alerts.apps", "alerts.observability"): "AppConfig.ready(): it reads models",
    ("graduation.apps", "agents.signals"): "AppConfig.ready(): subscribing to agents' signals",
    ("graduation.apps", "alerts.signals"): "AppConfig.ready(): subscribing the demotion to alert_raised",
    ("graduation.apps", "graduation.receivers"): "AppConfig.ready(): the receivers import models and services",
    ("graduation.apps", "graduation.criteria"): "AppConfig.ready(): checking the default criteria",
    ("tournaments.apps", "agents.signals"): "AppConfig.ready(): subscribing to agents' signals",
    ("tournaments.apps", "tournaments.receivers"): "AppConfig.ready(): the receivers import models and services",
    ("agents.refiners.factory", "agents.refiners.claude_refiner"):
        "optional heavy dependency: the anthropic SDK is imported only when the Claude refiner is chosen",
}


# --- the module graph ------------------------------------------------------------------------------
def project_modules(root, packages):
    """{dotted module name: path} of the packages' modules (a package is named by its __init__)."""
    modules = {}
    for package in packages:
        base = root / package
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            relative = path.relative_to(root)
            if SKIP_DIRS.intersection(relative.parts[:-1]):
                continue
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _resolve(name, modules):
    """The project module `name` lives in: itself, or the longest existing prefix (a name defined
    in a module: `agents.models.TradingAgent` -> `agents.models`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(node, module, is_package):
    """Dotted names an import statement of `module` reaches, relative imports resolved; for `from
    pkg import name` both `pkg.name` (a submodule, when it is one) and `pkg` itself."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


class _ImportVisitor(ast.NodeVisitor):
    def __init__(self):
        self.found = []  # (node, inside a function)
        self.depth = 0

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node):
        self.found.append((node, self.depth > 0))

    visit_ImportFrom = visit_Import


def import_graph(root, packages):
    """{module: {imported module: [(line, inside a function)]}} between the packages' modules.

    `from pkg import sub` where `sub` is a module depends on `sub` only (not on pkg/__init__,
    whose code Python runs first anyway: that edge would make every package a cycle with its
    submodules); `from pkg import name` where `name` is defined in pkg/__init__ depends on pkg.
    """
    modules = project_modules(root, packages)
    graph = {module: {} for module in modules}
    for module, path in modules.items():
        visitor = _ImportVisitor()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        is_package = path.name == "__init__.py"
        for node, inside in visitor.found:
            names = _imported_names(node, module, is_package)
            if isinstance(node, ast.ImportFrom):
                submodules = [n for n in names[1:] if n in modules]
                # the package itself only for names that are not submodules
                names = submodules + ([names[0]] if len(submodules) < len(names) - 1 else [])
            for name in names:
                target = _resolve(name, modules)
                if target is not None and target != module:
                    graph[module].setdefault(target, []).append((node.lineno, inside))
    return graph


def import_cycles(graph):
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(graph[successor])))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def _top(module):
    return module.split(".")[0]


def upward_imports(graph):
    """Imports that break the layering: an app importing an app above it, or config/core importing an app."""
    offenders = []
    for module, targets in graph.items():
        top = _top(module)
        if top in APPS:
            allowed = set(APPS[: APPS.index(top) + 1]) | set(SHARED)
        elif top in SHARED:
            allowed = set(SHARED)
        else:
            continue
        for target, places in targets.items():
            if _top(target) not in allowed:
                offenders.extend(f"{module}:{line} imports {target}" for line, _inside in places)
    return offenders


def imports_inside_functions(graph, allowed):
    return [
        f"{module}:{line} imports {target} inside a function"
        for module, targets in graph.items()
        for target, places in targets.items()
        for line, inside in places
        if inside and (module, target) not in allowed
    ]


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT, APPS + SHARED)


# --- the project keeps the rules -------------------------------------------------------------------
def test_the_graph_covers_every_app_and_config(graph):
    tops = {_top(module) for module in graph}
    assert set(APPS) | {"config"} <= tops
    assert {"agents.tasks", "config.observability.health", "alerts.heartbeat"} <= set(graph)
    assert "agents.services.learning" in graph["agents.tasks"]  # an edge the graph must see


def test_no_import_cycle_between_project_modules(graph):
    cycles = import_cycles(graph)
    assert not cycles, "\n".join(" <-> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("layer", APPS + SHARED)
def test_a_layer_imports_only_what_is_below_it(graph, layer):
    offenders = [line for line in upward_imports(graph) if line.startswith(f"{layer}.") or line.startswith(f"{layer}:")]
    assert not offenders, "\n".join(offenders)


def test_no_project_import_hides_inside_a_function(graph):
    offenders = imports_inside_functions(graph, ALLOWED_INSIDE_FUNCTIONS)
    assert not offenders, "\n".join(offenders)


def test_every_allowed_import_inside_a_function_still_exists(graph):
    present = {(module, target) for module, targets in graph.items() for target, places in targets.items()
               if any(inside for _line, inside in places)}
    stale = sorted(set(ALLOWED_INSIDE_FUNCTIONS) - present)
    assert not stale, f"allow-list entries without their import: {stale}"


# --- the checker itself, on a tiny package ---------------------------------------------------------
def _write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_finds_a_cycle_hidden_inside_a_function(tmp_path):
    _write(tmp_path, {
        "shop/__init__.py": "",
        "shop/orders.py": "from shop import billing\n",
        "shop/billing.py": "def bill():\n    from .orders import Order\n",
        "shop/stock.py": "import shop.orders\n",
    })
    graph = import_graph(tmp_path, ["shop"])
    assert graph["shop.billing"] == {"shop.orders": [(2, True)]}  # relative import resolved
    assert graph["shop.orders"] == {"shop.billing": [(1, False)]}  # a submodule, not the package
    assert import_cycles(graph) == [["shop.billing", "shop.orders"]]
    assert imports_inside_functions(graph, {}) == ["shop.billing:2 imports shop.orders inside a function"]
    assert imports_inside_functions(graph, {("shop.billing", "shop.orders"): "a reason"}) == []


def test_the_checker_resolves_names_packages_and_parent_relative_imports(tmp_path):
    _write(tmp_path, {
        "lab/__init__.py": "VERSION = 1\n",
        "lab/core/__init__.py": "from .money import Money\n",
        "lab/core/money.py": "class Money: ...\n",
        "lab/app/__init__.py": "",
        "lab/app/views.py": "from ..core import Money\nfrom lab import VERSION\nfrom ..core.money import Money as M\n",
    })
    graph = import_graph(tmp_path, ["lab"])
    assert graph["lab.core"] == {"lab.core.money": [(1, False)]}
    assert set(graph["lab.app.views"]) == {"lab.core", "lab", "lab.core.money"}
    assert import_cycles(graph) == []


def test_the_checker_finds_a_longer_cycle_and_an_upward_import(tmp_path):
    _write(tmp_path, {
        "config/__init__.py": "",
        "config/health.py": "def check():\n    from alerts.models import Alert\n",
        "alerts/__init__.py": "",
        "alerts/models.py": "from agents import models\n",
        "agents/__init__.py": "",
        "agents/models.py": "import agents.tasks\n",
        "agents/tasks.py": "from agents.services import run\n",
        "agents/services.py": "def run():\n    from alerts.models import Alert\n",
    })
    graph = import_graph(tmp_path, ["agents", "alerts", "config"])
    assert import_cycles(graph) == [["agents.models", "agents.services", "agents.tasks", "alerts.models"]]
    assert sorted(upward_imports(graph)) == [
        "agents.services:2 imports alerts.models",
        "config.health:2 imports alerts.models",
    ]
