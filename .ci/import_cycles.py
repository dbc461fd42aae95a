"""Module-level import cycles among tmpbench, pruners and suites, counting every import statement
(inside functions too), found as strongly connected components of the import graph.

    python .ci/import_cycles.py [ROOT] [--edges] [--lazy]

Exits 1 when a cycle exists. `lint-imports` checks the same at package level (acyclic_siblings);
this script names the modules. ``--lazy`` also counts registry strings ("module:attr") as edges,
which makes the catalog a hub by design: use it to look, not to gate.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from collections import defaultdict

PACKAGES = ("tmpbench", "pruners", "suites")


def modules(root: str) -> dict[str, str]:
    """Dotted module name -> file path for every .py file of the packages."""
    found = {}
    for pkg in PACKAGES:
        for dirpath, _, files in os.walk(os.path.join(root, pkg)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def import_graph(mods: dict[str, str], lazy: bool) -> dict[str, set[str]]:
    def resolve(name: str) -> str | None:  # the longest known module prefix
        parts = name.split(".")
        while parts:
            if ".".join(parts) in mods:
                return ".".join(parts)
            parts.pop()
        return None

    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        text = open(path, encoding="utf-8").read()
        is_package = path.endswith("__init__.py")
        targets: list[str | None] = []
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                targets += [resolve(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_package else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets += [resolve(f"{source}.{a.name}") or resolve(source) for a in node.names]
        if lazy:
            targets += [resolve(s) for s in re.findall(r'"((?:tmpbench|pruners|suites)[\w.]*):\w+"', text)]
        graph[mod].update(t for t in targets if t and t != mod)
    return graph


def cycles(graph: dict[str, set[str]], nodes: list[str]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
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
                    components.append(sorted(component))
    return components


def main(argv: list[str]) -> int:
    root = next((a for a in argv if not a.startswith("--")), ".")
    mods = modules(root)
    graph = import_graph(mods, lazy="--lazy" in argv)
    found = cycles(graph, sorted(mods))
    print(f"modules: {len(mods)}  edges: {sum(len(v) for v in graph.values())}  cycles (SCCs > 1): {len(found)}")
    for component in found:
        print("  ", " <-> ".join(component))
    if "--edges" in argv:
        for mod in sorted(graph):
            print(mod, "->", sorted(graph[mod]))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
