"""The three plane views side by side, with a linked crosshair and cine.

``PlaneViews`` holds an axial, a coronal and a sagittal ``SliceView`` of one Document and lays them out
(View ▸ Layout: axial only, axial large with the two others stacked beside it, three in a row, 2x2 with a
crosshair read-out). The three slices shown always meet in one voxel, the crosshair point (i, j, k) =
(sagittal slice, coronal slice, axial slice): scrolling one plane moves the lines in the two others, and
with the linked crosshair on (X) a left click or drag in the coronal or sagittal view, or a left click in
the axial view while no editing tool is chosen (a drag there pans, as it always has), moves the two others
there; editing works in the axial view only. The display window
and the overlay mode are shared by the three. Cine (Space) steps through the axial slices at a chosen
rate, looping, until paused. Rulers (``lsms_viewer.state.rulers``) are drawn on the slice they were
measured on, in their plane; the ruler tool (R) measures in all three views.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QGridLayout, QLabel, QMenu, QSizePolicy, QWidget

from lsms_viewer import settings as user_settings
from lsms_viewer.actions import make_action
from lsms_viewer.display.planes import AXIAL, CORONAL, SAGITTAL, patient_position_text
from lsms_viewer.state.document import Document
from lsms_viewer.state.rulers import Rulers
from lsms_viewer.tools.base import PanTool, ToolEvent
from lsms_viewer.tools.crosshair import CrosshairTool
from lsms_viewer.tools.ruler import RulerTool
from lsms_viewer.views.slice_items import RulerOverlay
from lsms_viewer.views.slice_view import SliceView

#: layout key -> menu text; "1+2" (the default) shows the axial view large and the two others stacked
LAYOUTS = {
    "1x1": "&Axial only (1×1)",
    "1+2": "Axial &large, coronal and sagittal beside it",
    "1x3": "Three in a &row (1×3)",
    "2x2": "&Grid (2×2)",
}
DEFAULT_LAYOUT = "1+2"
CINE_RATES = (2, 5, 10, 15, 20, 30)  # slices per second offered in View ▸ Cine rate
AXIAL_ONLY_TIP = "Editing tools work in the axial view; here the left button moves the linked crosshair (X)."


class PlaneViews(QWidget):
    """Axial, coronal and sagittal views of ``document`` with a linked crosshair and cine."""

    point_changed = Signal(object)  # (i, j, k) of the crosshair
    cine_changed = Signal(bool)
    message = Signal(str)  # a short note for the status bar

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.axial = SliceView(document, plane=AXIAL)
        self.coronal = SliceView(document, plane=CORONAL)
        self.sagittal = SliceView(document, plane=SAGITTAL)
        self.views = {AXIAL: self.axial, CORONAL: self.coronal, SAGITTAL: self.sagittal}
        self._point: list[int] | None = None
        self._linked = False
        self.info = QLabel()  # the fourth cell of the 2x2 layout: where the crosshair is
        self.info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.info.setStyleSheet("background: black; color: #c8ced3;")
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.layout_key = ""
        self.rulers = Rulers(document)
        self.ruler_tools = {plane: RulerTool(lambda a, b, p=plane: self._measured(p, a, b)) for plane in self.views}
        self.ruler_items: dict[str, RulerOverlay] = {}
        for plane, view in self.views.items():
            item = RulerOverlay()
            item.setZValue(30)
            item.hide()
            view.view_box.addItem(item)
            self.ruler_items[plane] = item
            view.slice_changed.connect(lambda k, p=plane: self._slice_moved(p, k))
            view.window_changed.connect(self._share_window)
            # Sizes come from the layout's stretch factors alone: a view whose texts change (slice numbers)
            # must not move the others (the image under a still pointer would shift).
            view.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            if plane != AXIAL:
                view.canvas.setToolTip(f"{plane.capitalize()} view. {AXIAL_ONLY_TIP}")
        document.events.volume_changed.connect(self._on_volume_changed)
        self.axial.tool_changed.connect(self._axial_tool_changed)
        for event in (self.rulers.added, self.rulers.removed, self.rulers.reset):
            event.connect(lambda *_: self._draw_rulers())
        self._cine = QTimer(self)
        self._cine.timeout.connect(self._cine_step)
        self._build_actions()
        self.set_layout(user_settings.plane_layout(DEFAULT_LAYOUT), remember=False)
        self.set_linked(user_settings.crosshair_linked(), remember=False)
        self.set_cine_rate(user_settings.cine_fps(), remember=False)
        if document.volume is not None:
            self._on_volume_changed()

    # -- actions (View menu) ------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        self.layout_menu = QMenu("&Layout", self)
        self.layout_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for key, text in LAYOUTS.items():
            action = make_action(self, text, lambda _=False, k=key: self.set_layout(k), checkable=True)
            group.addAction(action)
            self.layout_menu.addAction(action)
            self.layout_actions[key] = action
        self.crosshair_action = make_action(
            self, "Linked &crosshair", self.set_linked, "X",
            "Click or drag in the coronal or sagittal view, or click in the axial view without an editing "
            "tool, to move the two other planes there", checkable=True)
        self.cine_action = make_action(self, "&Play / pause cine", self.toggle_cine, "Space",
                                       "Step through the axial slices at the cine rate, looping", checkable=True)
        # Space only where the images have the keyboard: elsewhere it presses buttons and ticks boxes.
        self.cine_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.addAction(self.cine_action)
        self.cine_rate_menu = QMenu("Cine &rate", self)
        self.cine_rate_actions: dict[int, QAction] = {}
        rates = QActionGroup(self)
        for fps in CINE_RATES:
            action = make_action(self, f"{fps} slices per second", lambda _=False, f=fps: self.set_cine_rate(f),
                                 checkable=True)
            rates.addAction(action)
            self.cine_rate_menu.addAction(action)
            self.cine_rate_actions[fps] = action

    def add_to_menu(self, menu: QMenu) -> None:
        menu.addMenu(self.layout_menu)
        menu.addAction(self.crosshair_action)
        menu.addAction(self.cine_action)
        menu.addMenu(self.cine_rate_menu)

    # -- layout -----------------------------------------------------------------------------------------
    def set_layout(self, key: str, remember: bool = True) -> None:
        """Show the views as ``key`` of ``LAYOUTS`` says (an unknown key: the default)."""
        key = key if key in LAYOUTS else DEFAULT_LAYOUT
        grid = self._grid
        for widget in (*self.views.values(), self.info):
            grid.removeWidget(widget)
            widget.hide()
        for i in range(3):
            grid.setRowStretch(i, 0)
            grid.setColumnStretch(i, 0)
        if key == "1x1":
            cells = [(self.axial, 0, 0, 1, 1)]
        elif key == "1+2":
            cells = [(self.axial, 0, 0, 2, 1), (self.coronal, 0, 1, 1, 1), (self.sagittal, 1, 1, 1, 1)]
            grid.setColumnStretch(0, 2)
            grid.setColumnStretch(1, 1)
        elif key == "1x3":
            cells = [(self.axial, 0, 0, 1, 1), (self.coronal, 0, 1, 1, 1), (self.sagittal, 0, 2, 1, 1)]
            for i in range(3):
                grid.setColumnStretch(i, 1)
        else:
            cells = [(self.axial, 0, 0, 1, 1), (self.coronal, 0, 1, 1, 1), (self.sagittal, 1, 0, 1, 1),
                     (self.info, 1, 1, 1, 1)]
            for i in range(2):
                grid.setColumnStretch(i, 1)
                grid.setRowStretch(i, 1)
        for widget, row, col, rows, cols in cells:
            grid.addWidget(widget, row, col, rows, cols)
            widget.show()
        if len(cells) == 1 or key == "1+2":
            grid.setRowStretch(0, 1)
            grid.setRowStretch(1, 1)
        self.layout_key = key
        self.layout_actions[key].setChecked(True)
        self._update_info()
        # The views take their new sizes when the layout runs: fit the images afterwards.
        QTimer.singleShot(0, self, self.reset_views)
        if remember:
            user_settings.set_plane_layout(key)

    def visible_views(self) -> list[SliceView]:
        return [v for v in self.views.values() if v.isVisible()]

    def reset_views(self) -> None:
        for view in self.views.values():
            view.reset_view()

    def set_overlay_mode(self, mode: str) -> None:
        for view in self.views.values():
            view.set_overlay_mode(mode)

    # -- linked crosshair -------------------------------------------------------------------------------
    @property
    def linked(self) -> bool:
        return self._linked

    @property
    def point(self) -> tuple[int, int, int] | None:
        """The voxel (i, j, k) where the three planes meet (None without a study)."""
        return tuple(self._point) if self._point is not None else None

    def set_linked(self, on: bool, remember: bool = True) -> None:
        """Linked crosshair on: lines in every plane, and the left button moves them (see the module)."""
        self._linked = bool(on)
        for plane, view in self.views.items():
            tool = CrosshairTool(lambda ev, p=plane: self.pick(p, ev.slice_index, ev.col, ev.row),
                                 drag_pans=plane == AXIAL) if on else None
            view.set_pick_tool(tool)
        self.crosshair_action.setChecked(self._linked)
        self._draw_crosshairs()
        if remember:
            user_settings.set_crosshair_linked(self._linked)

    def pick(self, plane: str, index: int, col: float, row: float) -> None:
        """Move the crosshair to plane point (col, row) of slice ``index`` of ``plane`` (clamped to the image)."""
        geometry = self.views[plane].geometry
        if geometry is None:
            return
        if plane != AXIAL and type(self.axial.tool) is not PanTool:
            self.message.emit(AXIAL_ONLY_TIP)
        h, w = geometry.size
        col, row = min(max(col, 0.0), w - 1e-6), min(max(row, 0.0), h - 1e-6)
        self.set_point(geometry.voxel_at(index, col, row))

    def set_point(self, ijk) -> None:
        """Show the three planes through voxel (i, j, k)."""
        if self.document.volume is None:
            return
        self._point = [int(v) for v in ijk]
        for view in self.views.values():
            view.set_slice(self._point[view.geometry.normal_axis])
        self._point_moved()

    def _slice_moved(self, plane: str, k: int) -> None:
        view = self.views[plane]
        if self._point is None or view.geometry is None:
            return
        if len(self.rulers) or self.ruler_items[plane].isVisible():
            self._draw_rulers(plane)
        if self._point[view.geometry.normal_axis] != k:
            self._point[view.geometry.normal_axis] = k
            self._point_moved()

    def _point_moved(self) -> None:
        self._draw_crosshairs()
        self._update_info()
        self.point_changed.emit(self.point)

    def _draw_crosshairs(self) -> None:
        for view in self.views.values():
            view.set_crosshair(self.point if self._linked else None)

    def _update_info(self) -> None:
        volume = self.document.volume
        if self.layout_key != "2x2":
            return  # hidden; set_layout fills it when it shows
        if volume is None or self._point is None:
            self.info.setText("")
            return
        i, j, k = self._point
        lps = volume.index_to_world((i, j, k))
        self.info.setText(f"<p style='font-size:12pt'><b>Crosshair</b></p><p>{float(volume.array[k, j, i]):.0f} HU</p>"
                          f"<p>{patient_position_text(lps)} mm</p><p>voxel ({i}, {j}, {k})</p>")

    def _share_window(self, window) -> None:
        for view in self.views.values():
            if view.window != window:
                view.set_window(window)

    def _on_volume_changed(self) -> None:
        self.set_cine(False)
        self._point = [self.sagittal.current_slice, self.coronal.current_slice, self.axial.current_slice]
        self._point_moved()

    # -- cine -------------------------------------------------------------------------------------------
    @property
    def cine_rate(self) -> int:
        return self._fps

    def set_cine_rate(self, fps: int, remember: bool = True) -> None:
        self._fps = max(1, int(fps))
        self._cine.setInterval(round(1000 / self._fps))
        for rate, action in self.cine_rate_actions.items():
            action.setChecked(rate == self._fps)
        if remember:
            user_settings.set_cine_fps(self._fps)

    def is_playing(self) -> bool:
        return self._cine.isActive()

    def set_cine(self, on: bool) -> None:
        on = bool(on) and self.document.volume is not None
        if on:
            self._cine.start()
        else:
            self._cine.stop()
        self.cine_action.setChecked(on)
        self.cine_changed.emit(on)

    def toggle_cine(self) -> None:
        self.set_cine(not self.is_playing())

    def _cine_step(self) -> None:
        """The next axial slice in the numbers shown (head first or not), back to the first after the last."""
        view = self.axial
        if self.document.volume is None:
            self.set_cine(False)
            return
        numbering = view.numbering
        view.set_slice(numbering.index(numbering.number(view.current_slice) % numbering.count + 1))

    # -- rulers -----------------------------------------------------------------------------------------
    def _axial_tool_changed(self, tool) -> None:
        """The ruler measures in every plane: the side views take it when the axial view does."""
        for plane in (CORONAL, SAGITTAL):
            self.views[plane].set_tool(self.ruler_tools[plane] if isinstance(tool, RulerTool) else None)

    def _measured(self, plane: str, start: ToolEvent, end: ToolEvent) -> None:
        geometry = self.views[plane].geometry
        if geometry is None:
            return
        h, w = geometry.size

        def voxel(event: ToolEvent):
            col, row = min(max(event.col, 0.0), float(w)), min(max(event.row, 0.0), float(h))
            return geometry.to_voxel(event.slice_index + 0.5, col, row)

        ruler = self.rulers.add(plane, start.slice_index, voxel(start), voxel(end))
        volume = self.document.volume
        self.message.emit(f"Ruler {ruler.id}: {ruler.length_mm(volume):.1f} mm ({plane}); listed under "
                          "Measurements")

    def _draw_rulers(self, only: str | None = None) -> None:
        volume = self.document.volume
        for plane, view in self.views.items():
            if (only is not None and plane != only) or view.geometry is None or volume is None:
                continue
            geometry, (px, py) = view.geometry, view.geometry.pixel_mm
            lines = []
            for ruler in self.rulers.on(plane, view.current_slice):
                _, c1, r1 = geometry.to_plane(ruler.start)
                _, c2, r2 = geometry.to_plane(ruler.end)
                lines.append((c1 * px, r1 * py, c2 * px, r2 * py, f"{ruler.length_mm(volume):.1f} mm"))
            self.ruler_items[plane].set_rulers(lines)
