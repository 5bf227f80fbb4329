"""A slice view: CT image + label overlay, orientation letters, window/level, zoom, pan, scroll, crosshair.

It shows one plane (``lsms_viewer.display.planes``): axial by default, or coronal or sagittal. Radiological
convention comes from the loader (``array[k]`` rows anterior->posterior, columns patient right->left), so
the axial view draws ``array[k]`` as is: row 0 at the top, column 0 at the left; the coronal and sagittal
views draw the plane's section (a numpy view) with the head up. The image items (``slice_items``) are
created once and only get new pixels; their rectangle is the plane's size in millimetres, so with a locked
1:1 aspect every pixel has its physical shape. The left mouse button goes to the active tool
(``lsms_viewer.tools``; editing tools work in the axial view only), or to the pick tool (the linked
crosshair) while the active tool is only the pan tool; the middle one pans, the right one sets the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from lsms_viewer.display.overlay import LabelExtents, compose_slice, lookup_table
from lsms_viewer.display.planes import AXIAL, PlaneGeometry, normal_axis_of
from lsms_viewer.display.slice_numbers import SliceNumbering, head_is_last
from lsms_viewer.display.windowing import SliceRenderer, Window, matching_preset
from lsms_viewer.qt_compat import ensure_none_reserve, install_none_guard
from lsms_viewer.state.document import Document, Label
from lsms_viewer.tools.base import PanTool, Tool, ToolEvent
from lsms_viewer.views.slice_items import (
    CrosshairItem,
    LabelOverlayItem,
    OverlayText,
    SliceCanvas,
    SliceImageItem,
)


@dataclass(frozen=True)
class CursorInfo:
    """What lies under the mouse pointer: the voxel (i, j, k) = (col, row, slice_index), in any plane."""

    col: int
    row: int
    slice_index: int
    hu: float
    lps: tuple[float, float, float]


class SliceView(QWidget):
    """Shows one slice of a Document's volume with its labels: axial, or the ``plane`` given."""

    slice_changed = Signal(int)
    # Emitted once scrolling pauses (SETTLE_MS after the last change): the place for work too slow to
    # redo on every wheel notch (re-measuring, statistics), while slice_changed stays cheap.
    slice_settled = Signal(int)
    SETTLE_MS = 80
    window_changed = Signal(object)  # Window
    cursor_moved = Signal(object)  # CursorInfo or None
    overlay_changed = Signal()
    numbering_changed = Signal()  # slice numbers shown changed (another study, or head-first numbering)
    tool_changed = Signal(object)  # the Tool given the left button

    # Long by design: the view's state, scene items, timers and signal wiring, made once and in one place.
    def __init__(self, document: Document, parent: QWidget | None = None, plane: str = AXIAL):
        super().__init__(parent)
        install_none_guard()  # see qt_compat: some PySide6 builds abort after enough repaints
        self.document = document
        self.plane = plane
        #: how this view's plane lies in the open volume (None until a volume is open)
        self.geometry: PlaneGeometry | None = None
        self._pick_tool: Tool | None = None
        self._left_tool: Tool | None = None  # the tool that got the current left-button press
        # coronal and sagittal views skip labels their slice does not cross (None in the axial view)
        self._extents = None if plane == AXIAL else LabelExtents(normal_axis_of(plane))
        self._slice = 0
        self._window = Window(400, 40)
        self._overlay_mode = "fill"
        self._overlay_buffer = np.zeros((1, 1), np.uint8)
        self._renderer = SliceRenderer()
        self._renderer.set_window(self._window)
        self._display = np.zeros((1, 1), np.uint32)  # the windowed slice on screen, RGB32 grey
        self._drag_start: tuple[QPointF, Window] | None = None
        # The image point under a mouse inside the canvas ((col, row) pixels), so the readout follows a
        # slice change made with the wheel or keys while the mouse stays still.
        self._hover: tuple[float, float] | None = None
        #: the slice numbers shown (array order, or head first); other views read it for their numbers
        self.numbering = SliceNumbering()
        self._head_first = False
        self._settle_timer = QTimer(self)
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(self.SETTLE_MS)
        self._settle_timer.timeout.connect(self._emit_settled)

        self.canvas = SliceCanvas(self)
        self.view_box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view_box.setMouseEnabled(False, False)
        self.view_box.setBackgroundColor("k")
        self.canvas.setCentralItem(self.view_box)
        self.image_item = SliceImageItem()
        self.overlay_item = LabelOverlayItem()
        self.overlay_item.setZValue(10)
        self.view_box.addItem(self.image_item)
        self.view_box.addItem(self.overlay_item)
        self.crosshair_item = CrosshairItem()
        self.crosshair_item.setZValue(20)
        self.crosshair_item.hide()
        self.view_box.addItem(self.crosshair_item)
        self._tool: Tool = PanTool()
        self._tool.activate(self)
        self._middle_pan = PanTool()  # the middle button pans whatever tool has the left one
        self._middle_pan.activate(self)

        self._letters = {
            "top": OverlayText(self.canvas, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, True, 12),
            "bottom": OverlayText(self.canvas, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, True, 12),
            "left": OverlayText(self.canvas, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, True, 12),
            "right": OverlayText(self.canvas, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, True, 12),
        }
        self._corners = {
            "top_left": OverlayText(self.canvas, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop),
            "top_right": OverlayText(self.canvas, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop),
            "bottom_left": OverlayText(self.canvas, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom),
            "bottom_right": OverlayText(self.canvas, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom),
        }
        self.placeholder = QLabel(
            "<div style='color:#9aa4ad'><p style='font-size:15pt'>No study open</p>"
            "<p>File ▸ Open a DICOM folder or a NIfTI / NRRD / MHA file,<br>drop it on this window, "
            "or start with <code>lsms-viewer --demo</code>.</p></div>",
            self.canvas,
        )
        if plane != AXIAL:  # the axial view says how to open a study; the side views only name themselves
            self.placeholder.setText(f"<div style='color:#5d666e; font-size:13pt'>{plane.capitalize()}</div>")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.canvas.resized.connect(self._place_texts)

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setMinimum(0)
        self.slider.setMaximum(0)
        self.slider.setPageStep(10)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self.set_slice)
        self.position_label = QLabel("–")
        self.position_label.setMinimumWidth(230 if plane == AXIAL else 0)  # side views are narrow
        self.position_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        font = self.position_label.font()
        font.setFamily("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.position_label.setFont(font)

        bottom = QHBoxLayout()
        bottom.setContentsMargins(8, 4, 8, 4)
        bottom.addWidget(QLabel("Slice" if plane == AXIAL else plane.capitalize()))
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.position_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(bottom)

        events = document.events
        events.volume_changed.connect(self._on_volume_changed)
        events.label_added.connect(self._on_labels_changed)
        events.label_removed.connect(self._on_labels_changed)
        events.label_changed.connect(self._on_label_changed)
        events.mask_changed.connect(self._on_mask_changed)
        self._show_placeholder(True)
        if document.volume is not None:  # a view made for a study already open shows it at once
            self._on_volume_changed()

    # -- public API ---------------------------------------------------------------------------------
    @property
    def current_slice(self) -> int:
        return self._slice

    @property
    def window(self) -> Window:
        return self._window

    @property
    def overlay_mode(self) -> str:
        return self._overlay_mode

    @property
    def tool(self) -> Tool:
        return self._tool

    def set_tool(self, tool: Tool | None) -> None:
        """Give the left mouse button to ``tool`` (``None`` = the pan tool)."""
        self._tool.deactivate()
        self._tool = tool or PanTool()
        self._tool.activate(self)
        self._update_cursor()
        self.tool_changed.emit(self._tool)

    def set_pick_tool(self, tool: Tool | None) -> None:
        """A tool that takes the left button while the active tool is only the pan tool (the linked
        crosshair); ``None``: the pan tool keeps it."""
        if self._pick_tool is not None:
            self._pick_tool.deactivate()
        self._pick_tool = tool
        if tool is not None:
            tool.activate(self)
        self._update_cursor()

    def _left_button_tool(self) -> Tool:
        return self._pick_tool if self._pick_tool is not None and type(self._tool) is PanTool else self._tool

    def _update_cursor(self) -> None:
        self.canvas.setCursor(self._left_button_tool().cursor)

    def set_crosshair(self, ijk: tuple[int, int, int] | None) -> None:
        """Draw the crosshair through voxel ``ijk`` (its two coordinates in this plane); None hides it."""
        if ijk is None or self.geometry is None:
            self.crosshair_item.hide()
            return
        self.crosshair_item.set_position(*self.geometry.centre_mm(ijk))
        self.crosshair_item.show()

    def set_slice(self, k: int) -> None:
        volume = self.document.volume
        if volume is None:
            return
        k = int(min(max(k, 0), self.geometry.count - 1))
        ensure_none_reserve()
        changed = k != self._slice
        self._slice = k
        self._draw_image()
        self._draw_overlay()
        if self.slider.value() != k:
            self.slider.blockSignals(True)
            self.slider.setValue(k)
            self.slider.blockSignals(False)
        self._update_position_text()
        if changed:
            self.slice_changed.emit(k)
            if self._hover is not None:  # the mouse did not move, the voxel under it did
                self.cursor_moved.emit(self.cursor_info_at(*self._hover))
            self._settle_timer.start()

    @property
    def head_first(self) -> bool:
        return self._head_first

    def set_head_first(self, on: bool) -> None:
        """Number slices from the head (slice 1 = most superior), as many PACS do; off: array order."""
        self._head_first = bool(on)
        self._update_numbering()

    def _update_numbering(self) -> None:
        volume = self.document.volume
        self.numbering.count = self.geometry.count if self.geometry is not None else 1
        self.numbering.reverse = self._head_first and self.plane == AXIAL and head_is_last(volume)
        self._update_position_text()
        self.numbering_changed.emit()

    def _emit_settled(self) -> None:
        self.slice_settled.emit(self._slice)

    def step(self, delta: int) -> None:
        self.set_slice(self._slice + delta)

    def set_window(self, window: Window) -> None:
        self._window = window
        self._renderer.set_window(window)
        if self.document.volume is not None:
            self._draw_image()
        self._update_window_text()
        self.window_changed.emit(window)

    def set_overlay_mode(self, mode: str) -> None:
        if mode not in ("fill", "outline"):
            raise ValueError(f"unknown overlay mode {mode!r}")
        self._overlay_mode = mode
        self._update_lut()

    def reset_view(self) -> None:
        volume = self.document.volume
        if volume is None:
            return
        self.view_box.setRange(rect=self.image_item.mapRectToParent(self.image_item.boundingRect()), padding=0.02)

    def zoom(self, factor: float, anchor: QPointF | None = None) -> None:
        """Scale the visible range by ``factor`` (< 1 zooms in) about a widget point (default: centre)."""
        center = None
        if anchor is not None:
            center = self.view_box.mapSceneToView(self.canvas.mapToScene(anchor.toPoint()))
        self.view_box.scaleBy((factor, factor), center=center)

    def pan_mm(self, dx: float, dy: float) -> None:
        self.view_box.translateBy(x=dx, y=dy)

    def displayed_image(self) -> np.ndarray:
        """The windowed 8-bit slice on screen (0 = at or below the window's floor, 255 = at or above)."""
        return (self._display & 0xFF).astype(np.uint8)

    def overlay_image(self) -> np.ndarray:
        """The label index image currently displayed (codes as in ``lsms_viewer.display.overlay``)."""
        return self._overlay_buffer

    def cursor_info_at(self, col: float, row: float) -> CursorInfo | None:
        volume = self.document.volume
        if volume is None:
            return None
        voxel = self.geometry.voxel_at(self._slice, col, row)
        if voxel is None:
            return None
        i, j, k = voxel
        hu = float(volume.array[k, j, i])
        lps = tuple(float(v) for v in volume.index_to_world((i, j, k)))
        return CursorInfo(i, j, k, hu, lps)

    # -- drawing ------------------------------------------------------------------------------------
    def _draw_image(self) -> None:
        volume = self.document.volume
        hu = self.geometry.section(volume.array, self._slice)  # a view: nothing of the volume is copied
        if self._display.shape != hu.shape:
            self._display = np.zeros(hu.shape, np.uint32)
        self._renderer.render(hu, out=self._display)
        self.image_item.set_pixels(self._display)

    def _draw_overlay(self) -> None:
        labels = self.document.labels
        if self._extents is None:
            box = compose_slice(labels, self._slice, self._overlay_buffer)
        else:
            box = compose_slice(labels, self._slice, self._overlay_buffer, self.geometry,
                                lambda label: self._extents.reaches(label, self._slice))
        if box is None:
            self.overlay_item.hide()
        else:
            # Only the labels' bounding box is handed to Qt: drawing an indexed image converts every
            # pixel on each paint, so a 40-pixel lesion should not cost a 512x512 conversion.
            rows, cols = box
            self.overlay_item.set_indices(self._overlay_buffer[rows, cols])
            sx, sy = self.geometry.pixel_mm
            self.overlay_item.setRect(QRectF(cols.start * sx, rows.start * sy,
                                             (cols.stop - cols.start) * sx, (rows.stop - rows.start) * sy))
            self.overlay_item.show()
        self.overlay_changed.emit()

    def _update_lut(self) -> None:
        self.overlay_item.setLookupTable(lookup_table(self.document.labels, self._overlay_mode))

    def _on_volume_changed(self) -> None:
        volume = self.document.volume
        self.geometry = geometry = PlaneGeometry.of(volume, self.plane)
        if self._extents is not None:
            self._extents.clear()
        z = geometry.count
        h, w = geometry.size
        sx, sy = geometry.pixel_mm
        self._overlay_buffer = np.zeros((h, w), np.uint8)
        self._slice = z // 2
        self.slider.blockSignals(True)
        self.slider.setMaximum(z - 1)
        self.slider.setPageStep(max(1, z // 10))
        self.slider.setValue(self._slice)
        self.slider.blockSignals(False)
        # An item must hold its new image before setRect: pyqtgraph turns the rectangle into a scale of
        # the item's *current* image size.
        self._draw_image()
        self.image_item.setRect(QRectF(0, 0, w * sx, h * sy))
        self.crosshair_item.set_bounds(QRectF(0, 0, w * sx, h * sy))
        self._update_lut()
        self._draw_overlay()  # places the overlay crop itself
        self._update_orientation()
        self._update_numbering()
        self._update_window_text()
        meta = volume.meta or {}
        title = " · ".join(str(v) for v in (meta.get("modality"), meta.get("series_description")) if v)
        if not title and volume.source is not None:
            title = volume.source.name
        x, y, zz = volume.shape[2], volume.shape[1], volume.shape[0]
        grid = f"{x} × {y} × {zz}   {volume.spacing[0]:.2f} × {volume.spacing[1]:.2f} × {volume.spacing[2]:.2f} mm"
        if self.plane != AXIAL or geometry.oblique:
            title = geometry.title if self.plane != AXIAL else f"{title}\n{geometry.title}"
            grid = f"{sx:.2f} × {sy:.2f} mm pixels" if self.plane != AXIAL else grid
        self._corners["top_left"].setText(f"{title}\n{grid}")
        self._show_placeholder(False)
        self.reset_view()
        self.slice_changed.emit(self._slice)

    def _on_labels_changed(self, label: Label) -> None:
        if self._extents is not None:
            self._extents.forget(label)
        if self.document.volume is None:
            return
        self._update_lut()
        self._draw_overlay()

    def _on_label_changed(self, _label: Label, field_name: str) -> None:
        if field_name in ("color", "opacity"):
            self._update_lut()
        elif field_name == "visible":
            self._update_lut()
            self._draw_overlay()

    def _on_mask_changed(self, label: Label, slices: range) -> None:
        if self._extents is not None:
            self._extents.grow(label, slices)
        # Every axial slice crosses a coronal or sagittal one: those redraw on any change.
        if (self._slice in slices) if self.plane == AXIAL else len(slices) > 0:
            self._draw_overlay()

    def _update_orientation(self) -> None:
        for key, text in self.geometry.letters().items():  # from the direction cosines, any orientation
            self._letters[key].setText(text)
        self._place_texts()

    def _update_position_text(self) -> None:
        volume = self.document.volume
        if volume is None:
            return
        axis = self.geometry.normal_axis  # the world coordinate the slice number stands for: z, y or x
        where = [0.0, 0.0, 0.0]
        where[axis] = self._slice
        z = float(volume.index_to_world(where)[axis])
        n, count, name = self.numbering.number(self._slice), self.geometry.count, "zyx"[2 - axis]
        self.position_label.setText(f"{n:>4} / {count}   {name} {z:+8.1f} mm")
        order = " (head first)" if self.numbering.reverse else ""
        self._corners["bottom_left"].setText(f"Slice {n} / {count}{order}\n{name} {z:+.1f} mm")
        self._place_texts()

    def _update_window_text(self) -> None:
        preset = matching_preset(self._window)
        name = f" ({preset.title})" if preset else ""
        self._corners["bottom_right"].setText(f"W {self._window.width:.0f}  L {self._window.level:.0f}{name}")
        self._place_texts()

    def _show_placeholder(self, show: bool) -> None:
        self.placeholder.setVisible(show)
        for label in (*self._letters.values(), *self._corners.values()):
            label.setVisible(not show)
        self._place_texts()

    def _place_texts(self) -> None:
        width, height = self.canvas.width(), self.canvas.height()
        margin = 8
        for label in (*self._letters.values(), *self._corners.values()):
            label.adjustSize()
        letters = self._letters
        letters["top"].move((width - letters["top"].width()) // 2, margin)
        letters["bottom"].move((width - letters["bottom"].width()) // 2, height - letters["bottom"].height() - margin)
        letters["left"].move(margin, (height - letters["left"].height()) // 2)
        letters["right"].move(width - letters["right"].width() - margin, (height - letters["right"].height()) // 2)
        corners = self._corners
        corners["top_left"].move(margin, margin)
        corners["top_right"].move(width - corners["top_right"].width() - margin, margin)
        corners["bottom_left"].move(margin, height - corners["bottom_left"].height() - margin)
        corners["bottom_right"].move(
            width - corners["bottom_right"].width() - margin, height - corners["bottom_right"].height() - margin
        )
        # In a narrow view the centred letters would run into the corner text: step them past it.
        for letter, corner_keys, direction in ((letters["top"], ("top_left", "top_right"), 1),
                                               (letters["bottom"], ("bottom_left", "bottom_right"), -1)):
            for key in corner_keys:
                corner = corners[key]
                if corner.isVisible() and corner.text() and letter.geometry().intersects(corner.geometry()):
                    y = corner.geometry().bottom() + 2 if direction > 0 else corner.y() - letter.height() - 2
                    letter.move(letter.x(), y)
        self.placeholder.setGeometry(0, 0, width, height)

    # -- mouse (called by the canvas) ---------------------------------------------------------------
    def _tool_event(self, ev: QMouseEvent) -> ToolEvent | None:
        volume = self.document.volume
        if volume is None:
            return None
        point = self.view_box.mapSceneToView(self.canvas.mapToScene(ev.position().toPoint()))
        sx, sy = self.geometry.pixel_mm
        mods = ev.modifiers()
        return ToolEvent(
            col=point.x() / sx,
            row=point.y() / sy,
            slice_index=self._slice,
            x_mm=point.x(),
            y_mm=point.y(),
            shift=bool(mods & Qt.KeyboardModifier.ShiftModifier),
            ctrl=bool(mods & Qt.KeyboardModifier.ControlModifier),
            alt=bool(mods & Qt.KeyboardModifier.AltModifier),
        )

    def _press(self, ev: QMouseEvent) -> None:
        if self.document.volume is None:
            return
        button = ev.button()
        if button == Qt.MouseButton.LeftButton:
            self._left_tool = self._left_button_tool()
            self._left_tool.press(self._tool_event(ev))
        elif button == Qt.MouseButton.MiddleButton:
            self._middle_pan.press(self._tool_event(ev))
        elif button == Qt.MouseButton.RightButton:
            self._drag_start = (ev.position(), self._window)

    def _move(self, ev: QMouseEvent, button: Qt.MouseButton | None) -> None:
        if self.document.volume is None:
            return
        event = self._tool_event(ev)
        if button == Qt.MouseButton.LeftButton and self._left_tool is not None:
            self._left_tool.move(event)
        elif button == Qt.MouseButton.MiddleButton:
            self._middle_pan.move(event)
        elif button == Qt.MouseButton.RightButton and self._drag_start is not None:
            start, window = self._drag_start
            delta = ev.position() - start
            self.set_window(window.dragged(delta.x(), delta.y()))
        elif button is None:
            self._tool.hover(event)
        self._hover = (event.col, event.row)
        self.cursor_moved.emit(self.cursor_info_at(event.col, event.row))

    def _release(self, ev: QMouseEvent, button: Qt.MouseButton) -> None:
        if self.document.volume is None:
            return
        if button == Qt.MouseButton.LeftButton and self._left_tool is not None:
            self._left_tool.release(self._tool_event(ev))
            self._left_tool = None
        elif button == Qt.MouseButton.MiddleButton:
            self._middle_pan.release(self._tool_event(ev))
        self._drag_start = None

    # -- keyboard -----------------------------------------------------------------------------------
    def keyPressEvent(self, ev: QKeyEvent) -> None:
        volume = self.document.volume
        if volume is None:
            return super().keyPressEvent(ev)
        page = max(1, self.geometry.count // 10)
        key = ev.key()
        moves = {
            Qt.Key.Key_Up: -1,
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_Down: 1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_PageUp: -page,
            Qt.Key.Key_PageDown: page,
        }
        if key in moves:
            self.step(moves[key])
        elif key == Qt.Key.Key_Home:
            self.set_slice(0)
        elif key == Qt.Key.Key_End:
            self.set_slice(self.geometry.count - 1)
        else:
            return super().keyPressEvent(ev)
        ev.accept()
