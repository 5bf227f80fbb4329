"""Editing the labels by hand: the tools of the slice view, Undo/Redo, and the one-shot operations on the
active label (fill holes, clear slice, interpolate between the slices drawn by hand).

What it adds to the window: Edit menu Undo/Redo (Ctrl+Z, Ctrl+Shift+Z and Ctrl+Y) naming the step, New
label (Ctrl+N: an empty label to draw, no model run needed), fill holes, clear slice, interpolate; toolbar and Tools menu: Pan (H), Brush (B), Eraser (E), Fill (F), Keep
piece (K), Remove piece (Shift+K); the Editing dock's panel (``panel``, docked by the composition root).
"""

from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from lsms_viewer.actions import make_action
from lsms_viewer.editing import EditError, clear_slice, fill_holes, interpolate_between
from lsms_viewer.main_window import MainWindow
from lsms_viewer.state.edit_context import MAX_RADIUS_MM, MIN_RADIUS_MM, EditContext, EditSettings
from lsms_viewer.state.history import DEFAULT_BUDGET_BYTES, UndoHistory
from lsms_viewer.tools.base import Tool
from lsms_viewer.tools.brush import BrushTool
from lsms_viewer.tools.click import FillTool, PieceTool
from lsms_viewer.views.editing_panel import EditingPanel

RADIUS_STEPS_MM = (0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100)
TOOL_SPECS = (
    ("pan", "Pan", "H", "Left-drag pans (the middle button always pans)"),
    ("brush", "Brush", "B", "Paint the active label (Shift erases; [ ] size)"),
    ("eraser", "Eraser", "E", "Erase the active label"),
    ("fill", "Fill", "F", "Fill the region inside the label's outline on this slice"),
    ("keep", "Keep piece", "K", "Click a piece of the label to keep only it (Ctrl: 3D)"),
    ("remove", "Remove piece", "Shift+K", "Click a piece of the label to remove it (Ctrl: 3D)"),
)


def undo_budget_bytes() -> int:
    """The undo memory budget: ``$LSMS_UNDO_BUDGET_MB`` if set to a positive number, else 256 MB."""
    try:
        mb = float(os.environ.get("LSMS_UNDO_BUDGET_MB", ""))
    except ValueError:
        return DEFAULT_BUDGET_BYTES
    return int(mb * 1024 * 1024) if mb > 0 else DEFAULT_BUDGET_BYTES


class EditingController(QObject):
    """Owns the tools and their actions for one main window; the undo history is the composition root's."""

    def __init__(self, window: MainWindow, history: UndoHistory):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.history = history
        self.context = EditContext(self.document, history, EditSettings(), self.message)
        self.tools: dict[str, Tool] = {
            "brush": BrushTool(self.context),
            "eraser": BrushTool(self.context, erase=True),
            "fill": FillTool(self.context),
            "keep": PieceTool(self.context, keep=True),
            "remove": PieceTool(self.context, keep=False),
        }
        self._build_actions()
        self.panel = EditingPanel(self.context.settings, self.slice_actions, window.slice_view)
        self.history.changed.connect(self._update_actions)
        events = self.document.events
        events.volume_changed.connect(self._update_actions)
        events.active_label_changed.connect(lambda _label: self._update_actions())
        events.label_removed.connect(lambda _label: self._update_actions())
        self._update_actions()

    # -- actions ------------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        action = make_action(self.window, text, slot, shortcut, tip, checkable)
        self.window.addAction(action)  # shortcuts work wherever the focus is in the window
        self._actions.append(action)
        return action

    def _build_actions(self) -> None:
        w = self.window
        self._actions: list[QAction] = []
        self.undo_action = self._action("&Undo", self.undo, QKeySequence.StandardKey.Undo, "Undo the last edit")
        self.redo_action = self._action("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "Redo what was undone")
        self.new_label_action = self._action("&New label", self.new_label, "Ctrl+N",
                                             "Add an empty label and draw it by hand (the brush takes the mouse)")
        self.new_label_action.setIconText("New label")
        self.fill_holes_action = self._action("Fill &holes on this slice", self.fill_holes_slice, "Ctrl+H",
                                              "Fill the holes of the active label on the current slice")
        self.fill_holes_all_action = self._action("Fill holes on &all slices", self.fill_holes_all,
                                                  tip="Fill the holes of the active label slice by slice")
        self.clear_slice_action = self._action("&Clear slice", self.clear_current_slice, "Ctrl+Backspace",
                                               "Remove the active label from the current slice")
        self.interpolate_action = self._action(
            "&Interpolate between edited slices", self.interpolate, "Ctrl+Shift+I",
            "Fill the slices between the last two slices you drew on (or across the gap at this slice)")
        self.slice_actions = [self.fill_holes_action, self.fill_holes_all_action, self.clear_slice_action,
                              self.interpolate_action]
        edit = w.menus["edit"]
        first = edit.actions()[0] if edit.actions() else None
        edit.insertAction(first, self.undo_action)
        edit.insertAction(first, self.redo_action)
        if first is not None:
            edit.insertSeparator(first)
        edit.insertAction(first, self.new_label_action)
        edit.addSeparator()
        edit.addActions(self.slice_actions)

        self.tool_group = QActionGroup(w)
        self.tool_group.setExclusive(True)
        self.tool_actions: dict[str, QAction] = {}
        w.add_to_toolbar([self.undo_action, self.redo_action, self.new_label_action])
        tools_menu = w.menus["tools"]
        tools_menu.addSeparator()
        for key, text, shortcut, tip in TOOL_SPECS:
            action = self._action(text, lambda _=False, k=key: self.set_tool(k), shortcut,
                                  f"{text} ({shortcut}): {tip}", checkable=True)
            self.tool_group.addAction(action)
            tools_menu.addAction(action)
            self.tool_actions[key] = action
        w.add_to_toolbar(list(self.tool_actions.values()))
        self.tool_actions["pan"].setChecked(True)
        self.smaller_action = self._action("Smaller brush", lambda: self.step_radius(-1), "[")
        self.larger_action = self._action("Larger brush", lambda: self.step_radius(1), "]")
        self._drop_clashing_shortcuts()

    def _drop_clashing_shortcuts(self) -> None:
        """An ambiguous shortcut fires neither action: the window's own actions win over ours."""
        mine = set(self._actions)
        taken = {seq.toString() for a in self.window.findChildren(QAction) if a not in mine for seq in a.shortcuts()}
        self.dropped_shortcuts: list[str] = []
        for action in self._actions:
            keep = [seq for seq in action.shortcuts() if seq.toString() not in taken]
            if len(keep) != len(action.shortcuts()):
                self.dropped_shortcuts += [f"{action.text()}: {seq.toString()}" for seq in action.shortcuts()
                                           if seq not in keep]
                action.setShortcuts(keep)

    def add_tool(self, key: str, text: str, shortcut: str, tip: str, tool: Tool) -> QAction:
        """A tool another part brings (the Box tool): in the Tools menu, the toolbar and the tool group."""
        self.tools[key] = tool
        action = self._action(text, lambda _=False: self.set_tool(key), shortcut, f"{text} ({shortcut}): {tip}",
                              checkable=True)
        self.tool_group.addAction(action)
        self.window.menus["tools"].addAction(action)
        self.window.add_to_toolbar([action])
        self.tool_actions[key] = action
        self._drop_clashing_shortcuts()
        return action

    def set_tool(self, key: str) -> None:
        """Give the left button to a tool: pan, brush, eraser, fill, keep, remove."""
        self.window.slice_view.set_tool(self.tools.get(key))
        self.tool_actions[key].setChecked(True)

    @property
    def active_tool(self) -> str:
        tool = self.window.slice_view.tool
        return next((k for k, t in self.tools.items() if t is tool), "pan")

    def step_radius(self, direction: int) -> None:
        r = self.context.settings.radius_mm
        if direction > 0:
            bigger = [s for s in RADIUS_STEPS_MM if s > r + 1e-6]
            r = bigger[0] if bigger else MAX_RADIUS_MM
        else:
            smaller = [s for s in RADIUS_STEPS_MM if s < r - 1e-6]
            r = smaller[-1] if smaller else MIN_RADIUS_MM
        self.panel.radius.setValue(r)
        self.message(f"Brush radius {r:g} mm")

    def message(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 5000)

    def _update_actions(self, *_args) -> None:
        h = self.history
        self.undo_action.setEnabled(h.can_undo)
        self.redo_action.setEnabled(h.can_redo)
        self.undo_action.setText(f"&Undo {h.undo_text}" if h.can_undo else "&Undo")
        self.redo_action.setText(f"&Redo {h.redo_text}" if h.can_redo else "&Redo")
        self.undo_action.setIconText("Undo")
        self.redo_action.setIconText("Redo")
        has_label = self.document.active_label is not None
        for action in self.slice_actions:
            action.setEnabled(has_label)
        for action in [*self.tool_actions.values(), self.new_label_action]:
            action.setEnabled(self.document.volume is not None)

    # -- undo ---------------------------------------------------------------------------------------
    def undo(self) -> None:
        what = self.history.undo()
        self.message(f"Undone: {what}" if what else "Nothing to undo")

    def redo(self) -> None:
        what = self.history.redo()
        self.message(f"Redone: {what}" if what else "Nothing to redo")

    # -- new label ----------------------------------------------------------------------------------
    def new_label(self):
        """An empty label, active, with the brush in hand (one undo step); returns it (None: refused)."""
        volume = self.document.volume
        if volume is None:
            self.message("Open a study first")
            return None
        try:
            label = self.document.add_label(np.zeros(volume.shape, dtype=bool))
        except RuntimeError as exc:  # the most labels the overlay can code
            self.window.show_error("Cannot add another label", f"{exc}. Delete or merge labels first.")
            return None
        if self.active_tool in ("pan", "keep", "remove"):
            self.set_tool("brush")
        self.message(f"New label “{label.name}”: paint it with the brush (B), Shift erases")
        return label

    # -- one-shot operations on the active label ------------------------------------------------------
    def _active(self):
        label = self.document.active_label
        if label is None:
            self.message("No active label: select one in the label list")
        return label

    def _apply(self, description: str, make_change) -> bool:
        label = self._active()
        if label is None:
            return False
        try:
            change = make_change(label)
        except EditError as exc:
            self.message(str(exc))
            return False
        if change.empty:
            self.message(f"{description}: nothing to change")
            return False
        with self.history.batch(description):
            self.context.apply(label, change)
        self.message(f"{description}: {change.changed_voxels:,} voxels")
        return True

    def fill_holes_slice(self) -> bool:
        z = self.window.current_slice()
        return self._apply("fill holes", lambda label: fill_holes(label.mask, z=z))

    def fill_holes_all(self) -> bool:
        return self._apply("fill holes (all slices)", lambda label: fill_holes(label.mask))

    def clear_current_slice(self) -> bool:
        z = self.window.current_slice()
        return self._apply("clear slice", lambda label: clear_slice(label.mask, z))

    def interpolate(self) -> bool:
        label = self._active()
        if label is None:
            return False
        keys = self.context.interpolation_keys(label, self.window.current_slice())
        if keys is None:
            self.message("Draw the label on two slices (with empty slices between them), then interpolate")
            return False
        sx, sy, _ = self.document.volume.spacing
        return self._apply(f"interpolate slices {keys[0] + 1}–{keys[1] + 1}",
                           lambda lab: interpolate_between(lab.mask, keys[0], keys[1], (sy, sx)))
