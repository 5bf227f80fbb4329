"""Windowing (issue 15 item 11): a portal-venous liver preset, W/L typed, user presets saved, and the number
keys working without clicking the image first."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from lsms_viewer.display.windowing import Window


def _key(key):
    QTest.keyClick(QApplication.focusWidget(), key)


def test_the_liver_preset_keeps_an_enhanced_liver_grey(viewer, volume):
    arr = np.full((4, 16, 16), 110, np.int16)  # portal-venous liver parenchyma
    from lsms_core.volume import Volume

    viewer.opening.set_volume(Volume(arr, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0)))
    viewer.window.apply_preset("liver")
    assert viewer.window.slice_view.window == Window(150, 90)
    grey = int(viewer.window.slice_view.displayed_image()[8, 8])
    assert 100 < grey < 220  # W150/L30 made it white (255)


def test_width_and_level_can_be_typed(viewer, volume, qtbot):
    viewer.opening.set_volume(volume)
    win = viewer.window
    box = win.width_box
    box.setFocus()
    box.selectAll()
    QTest.keyClicks(box, "350")
    assert win.slice_view.window.width != 350  # not on every digit
    QTest.keyClick(box, Qt.Key.Key_Return)
    win.level_box.setFocus()
    win.level_box.selectAll()
    QTest.keyClicks(win.level_box, "-20")
    QTest.keyClick(win.level_box, Qt.Key.Key_Return)
    assert win.slice_view.window == Window(350, -20)
    assert QApplication.focusWidget() is win.slice_view.canvas  # Enter gives the keys back to the image
    _key(Qt.Key.Key_3)
    assert win.slice_view.window == Window(1500, -600)
    assert (win.width_box.value(), win.level_box.value()) == (1500, -600)  # the boxes follow


def test_user_presets_are_saved_and_come_back(viewer, volume, qtbot):
    viewer.opening.set_volume(volume)
    win = viewer.window
    win.set_window_numbers(180, 70)
    assert win.save_user_preset("Liver mets")
    assert "Liver mets" in [a.text().split("  ")[0] for a in win.preset_menu.actions()]
    assert not win.save_user_preset("  ")  # refused, with a dialog
    assert win.last_error[0] == "Cannot save the preset"
    from lsms_viewer.app import build_viewer

    win.close()  # the next start
    second = build_viewer()
    qtbot.addWidget(second.window)
    second.window.show()
    qtbot.waitExposed(second.window)
    second.opening.set_volume(volume)
    second.window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is second.window)
    second.window.slice_view.canvas.setFocus()
    _key(Qt.Key.Key_6)  # the first user preset's key
    assert second.window.slice_view.window == Window(180, 70)
    second.window.save_default_preset()
    from lsms_viewer import settings as user_settings

    assert user_settings.default_preset() == "user:Liver mets"


def test_number_keys_work_after_running_words(qtbot, engine, study):
    from lsms_viewer.app import build_viewer

    viewer = build_viewer(engine=engine)
    win = viewer.window
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    viewer.opening.set_volume(study[0])
    win.activateWindow()
    bar = win.expression_bar
    bar.edit.setFocus()
    QTest.keyClicks(bar.edit, "the low-density nodule")
    with qtbot.waitSignal(viewer.segmentation.done, timeout=60000):
        QTest.keyClick(bar.edit, Qt.Key.Key_Return)
    _key(Qt.Key.Key_2)  # without clicking the image
    assert win.slice_view.window == Window(150, 90)
    assert bar.edit.text() == "the low-density nodule"
