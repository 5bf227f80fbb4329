"""No import cycle between the viewer's modules (import-linter's layers check the packages; this checks
every module, inside the packages too)."""

from __future__ import annotations

import grimp


def _cycles(graph, modules: set[str]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), i.e. import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module) & modules:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_viewer_module_imports_itself_through_others():
    graph = grimp.build_graph("lsms_viewer", include_external_packages=False)
    modules = {m for m in graph.modules if m.startswith("lsms_viewer")}
    assert len(modules) > 40
    assert _cycles(graph, modules) == []
