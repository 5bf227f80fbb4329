"""The main window: the slice view, the expression bar, the label panel, menus, toolbar, status bar, docks.

It is the shell the controllers (``lsms_viewer.controllers``) plug into; ``lsms_viewer.app`` builds both.
What it offers them: ``document``, ``slice_view`` (the axial view; ``planes`` holds it with the coronal and
sagittal ones), ``expression_bar``, ``label_panel``, ``menus`` (dict:
file, edit, view, tools, help), ``toolbar``, ``add_to_toolbar``, ``add_dock``, ``statusBar()``,
``device_label``, ``load_progress``, ``show_error``, ``show_notice`` / ``clear_notice`` and
``current_slice()``. Its own actions are the display ones (window presets, overlay mode, zoom, slice
steps), deleting the selected label, Quit and Help. It emits ``closing`` before it closes (controllers stop
their threads and save there) and ``files_dropped(path)`` when a file is dropped on it.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from lsms_viewer import settings as user_settings
from lsms_viewer.actions import make_action
from lsms_viewer.display.planes import patient_position_text
from lsms_viewer.display.windowing import MIN_WIDTH, PRESETS, Window, matching_preset, preset
from lsms_viewer.state.document import Document
from lsms_viewer.views.expression_bar import ExpressionBar
from lsms_viewer.views.label_panel import LabelPanel
from lsms_viewer.views.plane_views import PlaneViews
from lsms_viewer.views.slice_view import CursorInfo

APP_TITLE = "LSMS Viewer"


class MainWindow(QMainWindow):
    closing = Signal()  # the window is about to close: stop threads, save the session
    files_dropped = Signal(str)  # a local file or folder was dropped on the window

    _LAYOUT_VERSION = 1  # bump when panels change so an old saved arrangement is not forced on a new one

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.document = document
        self._closing_by_user = False
        self.last_error: tuple[str, str] | None = None  # (title, message) of the last error shown
        self._message_boxes: list[QMessageBox] = []
        self._syncing_window = False
        self._user_presets: list = []

        # The axial, coronal and sagittal views; ``slice_view`` is the axial one, where editing happens.
        self.planes = PlaneViews(self.document)
        self.slice_view = self.planes.axial
        self.expression_bar = ExpressionBar()
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("background: #5a4a14; color: #fbe9b0; padding: 5px 10px;")
        self.notice.hide()
        self._notices: dict[str, str] = {}
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.notice)
        layout.addWidget(self.planes, 1)
        layout.addWidget(self.expression_bar)
        self.setCentralWidget(central)

        # Side panels run the full height; a bottom panel (measurements) sits under the image only.
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self._docks_sized = False
        self._build_status_bar()
        bar = self.menuBar()
        self.menus = {key: bar.addMenu(title) for key, title in (
            ("file", "&File"), ("edit", "&Edit"), ("view", "&View"), ("tools", "&Tools"), ("help", "&Help"))}
        self.toolbar = QToolBar("Main")
        self.toolbar.setObjectName("main-toolbar")
        self.toolbar.setMovable(False)
        self.addToolBar(self.toolbar)
        self.label_panel = LabelPanel(self.document, numbering=self.slice_view.numbering)
        self._build_actions()
        self.label_dock = self.add_dock(self.label_panel, "Labels", Qt.DockWidgetArea.RightDockWidgetArea)

        for view in self.planes.views.values():
            view.cursor_moved.connect(self._show_cursor)
        self.planes.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.slice_view.slice_changed.connect(self._show_slice)
        self.slice_view.window_changed.connect(self._window_changed)
        self.label_panel.overlay_mode_changed.connect(self.set_overlay_mode)
        self.document.events.volume_changed.connect(self._on_volume_changed)

        self.set_overlay_mode(user_settings.overlay_mode(), remember=False)
        self.slice_view.numbering_changed.connect(self._numbering_changed)
        self.set_head_first(user_settings.head_first_numbering(), remember=False)
        self.apply_preset(user_settings.default_preset())
        self._update_actions()
        self.resize(1280, 860)

    # -- what controllers build on -------------------------------------------------------------------
    def add_dock(self, widget: QWidget, title: str,
                 area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Dock ``widget`` in ``area``; View lists it so a closed panel can come back."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        self.menus["view"].addAction(dock.toggleViewAction())
        return dock

    def add_to_toolbar(self, actions: list[QAction], first: bool = False) -> None:
        """Append ``actions`` after a separator, or (``first``) put them at the start of the toolbar."""
        if not first:
            self.toolbar.addSeparator()
            self.toolbar.addActions(actions)
            return
        start = self.toolbar.actions()[0] if self.toolbar.actions() else None
        self.toolbar.insertActions(start, actions)
        if start is not None:
            self.toolbar.insertSeparator(start)

    def current_slice(self) -> int:
        return self.slice_view.current_slice

    def restore_layout(self) -> None:
        """Put the docks back where the user left them (call once every dock exists)."""
        s = user_settings.settings()
        geometry, state = s.value("window/geometry"), s.value("window/state")
        stored = (QByteArray, bytes, bytearray)  # what QSettings gives back for saved geometry and state
        if isinstance(geometry, stored):
            self.restoreGeometry(geometry)
        if isinstance(state, stored) and self.restoreState(state, self._LAYOUT_VERSION):
            self._docks_sized = True  # the user's own panel sizes win over the defaults

    # -- actions and menus -------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        return make_action(self, text, slot, shortcut, tip, checkable)

    def _build_status_bar(self) -> None:
        self.cursor_label = QLabel("")
        self.slice_label = QLabel("")
        self.device_label = QLabel("")
        for widget in (self.cursor_label, self.slice_label, self.device_label):
            widget.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.cursor_label.font()
        font.setFamily("monospace")
        self.cursor_label.setFont(font)
        # Permanent, so that no message or status tip hides the HU/mm readout (a plain status-bar widget is
        # hidden while a message shows); wide enough for its usual text, so it does not jump.
        self.cursor_label.setMinimumWidth(
            self.cursor_label.fontMetrics().horizontalAdvance("-1024 HU   123.4 R  123.4 A  1234.5 S mm   voxel (511, 511, 999)"))
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.load_progress = QProgressBar()
        self.load_progress.setMaximumWidth(160)
        self.load_progress.setTextVisible(False)
        self.load_progress.hide()
        self.statusBar().addPermanentWidget(self.load_progress)
        self.statusBar().addPermanentWidget(self.slice_label)
        self.statusBar().addPermanentWidget(self.device_label)

    def _build_actions(self) -> None:
        self.quit_action = self._action("&Quit", self.quit_by_user, QKeySequence.StandardKey.Quit)
        self.delete_label_action = self._action("&Delete label", self.label_panel.delete_selected,
                                                QKeySequence.StandardKey.Delete, "Delete the selected label")
        self.delete_label_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.label_panel.addAction(self.delete_label_action)
        self.menus["edit"].addAction(self.delete_label_action)

        # Window presets: 1..5 as in the issue; QLineEdit takes printable keys first, so typing "1" in
        # the expression box never changes the window.
        view_menu = self.menus["view"]
        self.preset_menu = view_menu.addMenu("&Window preset")
        self.preset_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for p in PRESETS:
            action = self._action(f"{p.title}  (W{p.window.width:.0f} / L{p.window.level:.0f})",
                                  lambda _=False, key=p.key: self.apply_preset(key), p.shortcut,
                                  f"Window {p.title}", checkable=True)
            group.addAction(action)
            self.preset_menu.addAction(action)
            self.preset_actions[p.key] = action
        self._preset_group = group
        self._user_separator = self.preset_menu.addSeparator()
        self.user_preset_actions: dict[str, QAction] = {}
        self.save_preset_action = self._action("Save current window as preset…", self.save_preset_dialog,
                                               tip="Keep this width and level under a name (keys 6-9 for the "
                                                   "first four)")
        self.preset_menu.addSeparator()
        self.preset_menu.addAction(self.save_preset_action)
        self.default_preset_action = self._action("Use current preset as default", self.save_default_preset,
                                                  tip="Open every study with this window")
        self.preset_menu.addAction(self.default_preset_action)
        self._rebuild_user_presets()
        view_menu.addSeparator()
        self.overlay_toggle_action = self._action("&Outline labels", self._toggle_overlay, "O",
                                                  "Show labels as outlines instead of a filled tint",
                                                  checkable=True)
        view_menu.addAction(self.overlay_toggle_action)
        self.head_first_action = self._action(
            "Number slices from the &head", self.set_head_first,
            tip="Slice 1 is the most superior slice, as many PACS number them (off: the file's order)",
            checkable=True)
        view_menu.addAction(self.head_first_action)
        view = self.slice_view
        self.reset_view_action = self._action("&Reset view", self.planes.reset_views, "Ctrl+0",
                                              "Fit the slices to their views")
        self.zoom_in_action = self._action("Zoom &in", lambda: view.zoom(0.8), QKeySequence.StandardKey.ZoomIn)
        self.zoom_out_action = self._action("Zoom &out", lambda: view.zoom(1.25), QKeySequence.StandardKey.ZoomOut)
        self.next_slice_action = self._action("Next slice", lambda: view.step(1), "Ctrl+Down")
        self.prev_slice_action = self._action("Previous slice", lambda: view.step(-1), "Ctrl+Up")
        self._view_actions = [self.reset_view_action, self.zoom_in_action, self.zoom_out_action,
                              self.prev_slice_action, self.next_slice_action]
        view_menu.addActions(self._view_actions)
        view_menu.addSeparator()
        self.planes.add_to_menu(view_menu)
        view_menu.addSeparator()

        help_menu = self.menus["help"]
        help_menu.addAction(self._action("&Keyboard and mouse", self.show_shortcuts,
                                         QKeySequence.StandardKey.HelpContents))
        help_menu.addAction(self._action("&About LSMS Viewer", self.show_about))
        help_menu.addAction(self._action("LSMS &paper (arXiv 2408.17347)", lambda: QDesktopServices.openUrl(
            QUrl("https://arxiv.org/abs/2408.17347"))))

        for key in ("abdomen", "liver", "lung", "bone", "brain"):
            action = self.preset_actions[key]
            action.setIconText(preset(key).title)
            self.toolbar.addAction(action)
        # The window typed as numbers (a right-drag is quick but imprecise; reports quote W/L).
        self.width_box, self.level_box = QSpinBox(), QSpinBox()
        self.width_box.setRange(int(MIN_WIDTH), 10000)
        self.level_box.setRange(-3000, 6000)
        for box, title, tip in ((self.width_box, "W", "Window width in HU (type and press Enter)"),
                                (self.level_box, "L", "Window level (centre) in HU (type and press Enter)")):
            box.setKeyboardTracking(False)  # applied on Enter or when leaving the box, not per digit
            box.setToolTip(tip)
            box.setAccelerated(True)
            box.valueChanged.connect(self._typed_window)
            # Enter hands the keys back to the image, so 1-5 and the arrows work at once.
            box.lineEdit().returnPressed.connect(lambda: self.slice_view.canvas.setFocus())
            label = QLabel(f" {title} ")
            label.setToolTip(tip)
            self.toolbar.addWidget(label)
            self.toolbar.addWidget(box)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.overlay_toggle_action)
        self.toolbar.addAction(self.reset_view_action)
        self.overlay_toggle_action.setIconText("Outline")
        self.reset_view_action.setIconText("Fit")

    def finish_menus(self) -> None:
        """Close the File menu with Quit, once the controllers have added their entries."""
        self.menus["file"].addSeparator()
        self.menus["file"].addAction(self.quit_action)

    def _update_actions(self) -> None:
        has_volume = self.document.volume is not None
        for action in self._view_actions:
            action.setEnabled(has_volume)

    # -- display -----------------------------------------------------------------------------------
    def apply_preset(self, key: str) -> None:
        user = {p.key: p for p in self._user_presets}
        self.slice_view.set_window(user[key].window if key in user else preset(key).window)

    def set_window_numbers(self, width: float, level: float) -> None:
        """Set the display window to a typed width and level (HU)."""
        self.slice_view.set_window(Window(max(MIN_WIDTH, float(width)), float(level)))

    def _typed_window(self, _value: int = 0) -> None:
        if self._syncing_window:
            return
        self.set_window_numbers(self.width_box.value(), self.level_box.value())

    def save_user_preset(self, name: str) -> bool:
        """Save the current window as a named preset (kept for every study); False with a message if not."""
        try:
            presets = user_settings.save_user_preset(name, self.slice_view.window)
        except ValueError as exc:
            self.show_error("Cannot save the preset", str(exc))
            return False
        self._rebuild_user_presets()
        saved = next(p for p in presets if p.title == " ".join(name.split()))
        key = f" (key {saved.shortcut})" if saved.shortcut else ""
        self.statusBar().showMessage(f"Window preset “{saved.title}” saved: W{saved.window.width:.0f} / "
                                     f"L{saved.window.level:.0f}{key}.", 8000)
        return True

    def save_preset_dialog(self) -> None:
        w = self.slice_view.window
        name, ok = QInputDialog.getText(self, "Save window preset",
                                        f"Name for W{w.width:.0f} / L{w.level:.0f}:")
        if ok and name.strip():
            self.save_user_preset(name)

    def _rebuild_user_presets(self) -> None:
        for action in self.user_preset_actions.values():
            self.preset_menu.removeAction(action)
            self._preset_group.removeAction(action)
            self.removeAction(action)
            action.deleteLater()
        self.user_preset_actions = {}
        self._user_presets = user_settings.user_presets()
        for p in self._user_presets:
            action = self._action(f"{p.title}  (W{p.window.width:.0f} / L{p.window.level:.0f})",
                                  lambda _=False, key=p.key: self.apply_preset(key), p.shortcut or None,
                                  f"Window {p.title} (saved)", checkable=True)
            self.addAction(action)
            self._preset_group.addAction(action)
            self.preset_menu.insertAction(self._user_separator, action)
            self.user_preset_actions[p.key] = action
        self._window_changed(self.slice_view.window)

    def save_default_preset(self) -> None:
        p = matching_preset(self.slice_view.window, self._user_presets)
        if p is None:
            self.statusBar().showMessage("The current window is not a preset; choose one first (1–5), or save "
                                         "it as one.", 6000)
            return
        user_settings.set_default_preset(p.key)
        self.statusBar().showMessage(f"{p.title} window is now the default for every study.", 6000)

    def _window_changed(self, window) -> None:
        p = matching_preset(window, getattr(self, "_user_presets", ()))
        for key, action in {**self.preset_actions, **getattr(self, "user_preset_actions", {})}.items():
            action.setChecked(p is not None and p.key == key)
        if hasattr(self, "width_box"):
            self._syncing_window = True
            try:
                self.width_box.setValue(round(window.width))
                self.level_box.setValue(round(window.level))
            finally:
                self._syncing_window = False

    def set_overlay_mode(self, mode: str, remember: bool = True) -> None:
        self.planes.set_overlay_mode(mode)
        self.label_panel.set_overlay_mode(mode)
        self.overlay_toggle_action.setChecked(mode == "outline")
        if remember and mode != user_settings.overlay_mode():
            user_settings.set_overlay_mode(mode)

    def _numbering_changed(self) -> None:
        self._show_slice(self.slice_view.current_slice)
        self.label_panel.refresh_numbers()

    def set_head_first(self, on: bool, remember: bool = True) -> None:
        """Number slices from the head (remembered for every study)."""
        self.slice_view.set_head_first(on)
        self.head_first_action.setChecked(bool(on))
        if remember:
            user_settings.set_head_first_numbering(bool(on))

    def _toggle_overlay(self) -> None:
        self.set_overlay_mode("outline" if self.slice_view.overlay_mode == "fill" else "fill")

    def _on_volume_changed(self) -> None:
        volume = self.document.volume
        name = volume.source.name if volume.source is not None else (volume.meta or {}).get(
            "series_description", "untitled")
        self.setWindowTitle(f"{name} — {APP_TITLE}")
        self._show_slice(self.slice_view.current_slice)
        self._update_actions()
        self.slice_view.canvas.setFocus()

    def _show_cursor(self, info: CursorInfo | None) -> None:
        if info is None:
            self.cursor_label.setText("")
            return
        self.cursor_label.setText(
            f"{info.hu:7.0f} HU   {patient_position_text(info.lps)} mm   voxel ({info.col}, {info.row}, {info.slice_index})"
        )

    def _show_slice(self, k: int) -> None:
        volume = self.document.volume
        if volume is None:
            self.slice_label.setText("")
            return
        z = float(volume.index_to_world((0, 0, k))[2])
        n = self.slice_view.numbering.number(k)
        order = " (head first)" if self.slice_view.numbering.reverse else ""
        self.slice_label.setText(f"Slice {n} / {volume.shape[0]}{order} · z {z:+.1f} mm")

    # -- messages ----------------------------------------------------------------------------------
    def show_notice(self, text: str, key: str = "general") -> None:
        """A banner above the image; one line per ``key`` ("study": load warnings, "model", "demo")."""
        if text:
            self._notices[key] = text
        else:
            self._notices.pop(key, None)
        self.notice.setText("\n".join(self._notices.values()))
        self.notice.setVisible(bool(self._notices))

    def clear_notice(self, key: str) -> None:
        self.show_notice("", key)

    def show_error(self, title: str, message: str) -> None:
        """A window-modal message that never blocks the caller (tests and workers keep running)."""
        self.last_error = (title, message)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _=0, b=box: self._message_boxes.remove(b) if b in self._message_boxes else None)
        self._message_boxes.append(box)
        box.open()

    _MOUSE_ROWS = (
        ("Wheel, ↑/↓, ←/→, PgUp/PgDn, Home/End", "change slice"),
        ("Ctrl+wheel", "zoom about the cursor"),
        ("Middle drag (left drag with Pan)", "pan"),
        ("Right drag", "window: left/right = width, up/down = level"),
        ("Left click or drag in coronal / sagittal (click in axial with Pan)", "move the linked crosshair"),
        ("Shift + brush", "erase with the brush"),
        ("Ctrl + click (Keep / Remove piece)", "the 3D lesion instead of the slice's piece"),
        ("Enter (in the words box)", "run the expression"),
    )

    def shortcut_rows(self) -> list[tuple[str, str]]:
        """(keys, what) for the mouse and for every action that has a key, read from the actions themselves
        (menus, toolbar and window), so the list always says what the keys do now."""
        rows = list(self._MOUSE_ROWS)
        seen: set[str] = set()
        actions = []

        def walk(menu) -> None:
            for action in menu.actions():
                if action.menu() is not None:
                    walk(action.menu())
                else:
                    actions.append(action)

        for menu in self.menus.values():
            walk(menu)
        actions += [a for a in self.actions() if a not in actions]
        for action in actions:
            keys = ", ".join(seq.toString(QKeySequence.SequenceFormat.NativeText) for seq in action.shortcuts())
            what = action.text().replace("&", "").split("  (")[0].rstrip("…").strip()
            if what.startswith(("Undo ", "Redo ")):  # "Undo brush stroke" names the step now, not the key
                what = what.split(" ", 1)[0] + " the last step" if what.startswith("Undo") else "Redo"
            if keys and (keys, what) not in seen and what:
                seen.add((keys, what))
                rows.append((keys, what))
        return rows

    def shortcuts_html(self) -> str:
        import html

        return "<table cellspacing=3>" + "".join(
            f"<tr><td><b>{html.escape(keys)}</b></td><td>{html.escape(what)}</td></tr>"
            for keys, what in self.shortcut_rows()) + "</table>"

    def show_shortcuts(self) -> None:
        """Help ▸ Keyboard and mouse: a non-blocking window listing every key (editing ones included)."""
        from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser

        box = QDialog(self)
        box.setWindowTitle("Keyboard and mouse")
        text = QTextBrowser()
        text.setHtml(self.shortcuts_html())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(box.close)
        layout = QVBoxLayout(box)
        layout.addWidget(text)
        layout.addWidget(buttons)
        box.resize(560, 620)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.shortcuts_box = box
        box.show()

    def show_about(self) -> None:
        from lsms_core import __version__

        QMessageBox.about(self, "About LSMS Viewer",
                          f"<b>LSMS Viewer {__version__}</b><p>Referring lesion segmentation on CT with the "
                          "LSMS network (arXiv 2408.17347).</p><p>Research software, not for clinical use.</p>")

    # -- lifecycle ---------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            # Let the drop finish before a possibly long load (the source app waits for it otherwise).
            QTimer.singleShot(0, lambda: self.files_dropped.emit(paths[0]))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._docks_sized:
            self._docks_sized = True
            # The image is the point of the window: panels start narrow and short; users can drag them.
            docks = [d for d in self.findChildren(QDockWidget) if not d.isFloating() and d.isVisible()]
            right = [d for d in docks if self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
            bottom = [d for d in docks if self.dockWidgetArea(d) == Qt.DockWidgetArea.BottomDockWidgetArea]
            if right:
                width = int(min(380, max(260, 0.28 * self.width())))
                self.resizeDocks(right, [width] * len(right), Qt.Orientation.Horizontal)
            if bottom:
                self.resizeDocks(bottom, [150] * len(bottom), Qt.Orientation.Vertical)

    def closeEvent(self, event) -> None:
        self.closing.emit()
        # Only a close the user asked for (window button, File > Quit) stores the layout: windows closed
        # by scripts and tests must not rearrange the user's panels for the next start.
        if event.spontaneous() or self._closing_by_user:
            s: QSettings = user_settings.settings()
            s.setValue("window/geometry", self.saveGeometry())
            s.setValue("window/state", self.saveState(self._LAYOUT_VERSION))
            s.sync()
        super().closeEvent(event)

    def quit_by_user(self) -> None:
        self._closing_by_user = True
        try:
            self.close()
        finally:
            self._closing_by_user = False
