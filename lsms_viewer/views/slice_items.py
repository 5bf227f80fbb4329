"""The graphics the slice view is made of: the CT slice and the label overlay as zero-copy QImages, and
the text drawn over the image (orientation letters, corner information)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QMargins, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QTransform
from PySide6.QtWidgets import QLabel, QWidget


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
