"""The graphics the slice view is made of: the canvas that owns the mouse, the CT slice and the label
overlay as zero-copy QImages, the linked crosshair, and the text drawn over the image (orientation
letters, corner information)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QMargins, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPen, QTransform, QWheelEvent
from PySide6.QtWidgets import QLabel, QWidget

ZOOM_STEP = 0.85  # view range factor per wheel notch: ~15 % per notch feels like other viewers


class SliceCanvas(pg.GraphicsView):
    """The graphics view; it owns the mouse so that every button does the same thing everywhere."""

    resized = Signal()

    def __init__(self, owner):
        super().__init__(background="k")
        self._owner = owner
        self._button: Qt.MouseButton | None = None
        self._wheel_rest = 0.0
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)  # drops go to the main window

    # pyqtgraph's own handlers would pan/zoom through the ViewBox; ours replace them entirely.
    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self.setFocus()
        if self._button is not None:
            return
        self._button = ev.button()
        self._owner._press(ev)

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        self._owner._move(ev, self._button)

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if ev.button() != self._button:
            return
        self._owner._release(ev, self._button)
        self._button = None

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:
        if ev.button() == Qt.MouseButton.MiddleButton:
            self._owner.reset_view()

    def wheelEvent(self, ev: QWheelEvent) -> None:
        delta = ev.angleDelta().y() / 120.0
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._owner.zoom(ZOOM_STEP**delta, anchor=ev.position())
        else:
            # Trackpads send fractions of a notch; accumulate so slow swipes still move one slice.
            self._wheel_rest += delta
            steps = int(self._wheel_rest)
            self._wheel_rest -= steps
            if steps:
                self._owner.step(-steps)
        ev.accept()

    def leaveEvent(self, ev) -> None:
        self._owner._hover = None
        self._owner.cursor_moved.emit(None)
        super().leaveEvent(ev)

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self.resized.emit()  # the view places its texts (pyqtgraph also resizes once in its own __init__)


class SliceImageItem(pg.GraphicsObject):
    """The CT slice: one RGB32 QImage over a numpy buffer, drawn without conversion or copy.

    pyqtgraph's ImageItem would hand Qt an 8-bit or ARGB image it rebuilds per change and Qt converts per
    paint; this item is the fast path for the one layer that changes on every wheel notch. Pixels are
    drawn unsmoothed, so zoomed-in voxels stay crisp squares on HiDPI screens too.
    """

    FORMAT = QImage.Format.Format_RGB32

    def __init__(self) -> None:
        super().__init__()
        self._buffer = np.zeros((1, 1), np.uint32)
        self._qimage = QImage()
        self.image = None  # the uint32 buffer on screen, like ImageItem.image

    def set_pixels(self, buffer: np.ndarray) -> None:
        """Show ``buffer`` (uint32 0xAARRGGBB, C-contiguous, kept alive by the caller)."""
        h, w = buffer.shape
        if buffer.shape != self._buffer.shape:
            self.prepareGeometryChange()
        self._buffer = buffer
        self.image = buffer
        self._qimage = QImage(buffer.data, w, h, 4 * w, self.FORMAT)
        self.update()

    def width(self) -> int:
        return self._buffer.shape[1]

    def height(self) -> int:
        return self._buffer.shape[0]

    def setRect(self, rect: QRectF) -> None:
        """Map the image onto ``rect`` (millimetres), like ImageItem.setRect."""
        transform = QTransform()
        transform.translate(rect.left(), rect.top())
        transform.scale(rect.width() / self.width(), rect.height() / self.height())
        self.setTransform(transform)

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.width(), self.height())

    def paint(self, painter, *args) -> None:
        if not self._qimage.isNull():
            # No SmoothPixmapTransform: the view never sets it, so magnified voxels stay crisp squares.
            # (Not switched off here on purpose: PySide6 6.12's setRenderHint(s) mis-counts references
            # to its flag argument, and a few thousand paints later the interpreter aborts at exit.)
            painter.drawImage(QRectF(0, 0, self.width(), self.height()), self._qimage)


class LabelOverlayItem(SliceImageItem):
    """The label overlay: a uint8 index image (codes of ``lsms_viewer.display.overlay``) coloured by a 256-entry
    RGBA table into premultiplied ARGB32, the format Qt blends fastest."""

    FORMAT = QImage.Format.Format_ARGB32_Premultiplied

    def __init__(self) -> None:
        super().__init__()
        self.lut = np.zeros((256, 4), np.uint8)
        self._table = np.zeros(256, np.uint32)
        self._indices = np.zeros((1, 1), np.uint8)

    def setLookupTable(self, lut: np.ndarray) -> None:
        self.lut = np.asarray(lut, np.uint8)
        rgba = self.lut.astype(np.uint32)
        alpha = rgba[:, 3]
        r, g, b = ((rgba[:, c] * alpha + 127) // 255 for c in range(3))
        self._table = (alpha << 24) | (r << 16) | (g << 8) | b
        self.set_indices(self._indices)

    def set_indices(self, indices: np.ndarray) -> None:
        self._indices = indices
        self.set_pixels(np.take(self._table, indices))


class OverlayText(QLabel):
    """Text drawn over the image (orientation letters, corner info): readable on any grey.

    A hard one-pixel shadow painted by hand instead of a QGraphicsDropShadowEffect: the blur effect
    re-renders every label on each slice change and cost more than drawing the slice itself.
    """

    def __init__(self, parent: QWidget, align: Qt.AlignmentFlag, bold: bool = False, size: int = 10):
        super().__init__(parent)
        self.setAlignment(align)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        font = QFont(self.font())
        font.setPointSize(size)
        font.setBold(bold)
        self.setFont(font)
        self._color = QColor("#f2d675" if bold else "#e6e6e6")
        self._shadow = QColor(0, 0, 0, 230)
        self.setStyleSheet("background: transparent;")

    def sizeHint(self):
        hint = super().sizeHint()
        return hint.grownBy(QMargins(0, 0, 1, 1))

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setFont(self.font())
        rect = self.rect().adjusted(0, 0, -1, -1)
        flags = int(self.alignment().value)
        painter.setPen(self._shadow)
        painter.drawText(rect.translated(1, 1), flags, self.text())
        painter.setPen(self._color)
        painter.drawText(rect, flags, self.text())
        painter.end()


class CrosshairItem(pg.GraphicsObject):
    """The linked crosshair: a horizontal and a vertical line across the image through a voxel's centre,
    one pixel wide at any zoom, with a small gap so the voxel itself stays visible."""

    GAP_PX = 7

    def __init__(self) -> None:
        super().__init__()
        self._bounds = QRectF()
        self._x = self._y = 0.0
        self._pen = QPen(QColor(80, 200, 255, 190))
        self._pen.setCosmetic(True)
        self._pen.setWidth(1)

    def set_bounds(self, rect: QRectF) -> None:
        """The image's rectangle in millimetres (the lines run across it)."""
        self.prepareGeometryChange()
        self._bounds = QRectF(rect)

    def set_position(self, x_mm: float, y_mm: float) -> None:
        if (x_mm, y_mm) != (self._x, self._y):
            self._x, self._y = float(x_mm), float(y_mm)
            self.update()

    def position(self) -> tuple[float, float]:
        return self._x, self._y

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, painter, *args) -> None:
        transform = painter.worldTransform()
        gap_x = self.GAP_PX / max(abs(transform.m11()), 1e-9)
        gap_y = self.GAP_PX / max(abs(transform.m22()), 1e-9)
        b, x, y = self._bounds, self._x, self._y
        painter.setPen(self._pen)
        painter.drawLines([QLineF(b.left(), y, x - gap_x, y), QLineF(x + gap_x, y, b.right(), y),
                           QLineF(x, b.top(), x, y - gap_y), QLineF(x, y + gap_y, x, b.bottom())])


class RulerOverlay(pg.GraphicsObject):
    """The rulers on the shown slice: a line with end ticks and its length, one pixel wide at any zoom;
    the text is drawn in screen pixels beside the line's end, so it never scales with the zoom."""

    COLOR = QColor(255, 230, 90)

    def __init__(self) -> None:
        super().__init__()
        self._rulers: list[tuple[float, float, float, float, str]] = []
        self._bounds = QRectF()
        self._pen = QPen(self.COLOR)
        self._pen.setCosmetic(True)
        self._pen.setWidth(2)
        self._font = QFont()
        self._font.setPointSize(10)
        self._font.setBold(True)

    def set_rulers(self, rulers: list[tuple[float, float, float, float, str]]) -> None:
        """(x1, y1, x2, y2, text) in millimetres of the view."""
        self.prepareGeometryChange()
        self._rulers = list(rulers)
        if rulers:
            xs = [v for r in rulers for v in (r[0], r[2])]
            ys = [v for r in rulers for v in (r[1], r[3])]
            self._bounds = QRectF(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)).adjusted(-50, -50, 50, 50)
        else:
            self._bounds = QRectF()
        self.setVisible(bool(rulers))
        self.update()

    def rulers(self) -> list[tuple[float, float, float, float, str]]:
        return list(self._rulers)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, painter, *args) -> None:
        transform = painter.transform()
        screen = []
        for x1, y1, x2, y2, text in self._rulers:
            screen.append((transform.map(QPointF(x1, y1)), transform.map(QPointF(x2, y2)), text))
        painter.resetTransform()  # ticks and text in screen pixels
        shadow = QPen(QColor(0, 0, 0, 200))
        shadow.setWidth(3)
        painter.setFont(self._font)
        for a, b, text in screen:
            line = QLineF(a, b)
            normal = line.normalVector().unitVector()
            tick = QPointF(normal.dx() * 5, normal.dy() * 5)
            for pen in (shadow, self._pen):
                painter.setPen(pen)
                painter.drawLines([line, QLineF(a - tick, a + tick), QLineF(b - tick, b + tick)])
            where = b + QPointF(8, 4)
            painter.setPen(QColor(0, 0, 0, 230))
            painter.drawText(where + QPointF(1, 1), text)
            painter.setPen(self.COLOR)
            painter.drawText(where, text)
