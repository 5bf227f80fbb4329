"""Never losing work: the session autosave, the offer to restore after a crash or on reopening a study,
and restoring.

The ``Autosaver`` (Qt-free, ``lsms_viewer.state.session``) saves after every undo step; this controller
adds what needs the window: the clean-exit save when it closes, and the questions, asked in a banner
docked at the top of the window (``RestoreBanner``), never in a modal dialog.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer

from lsms_viewer.main_window import MainWindow
from lsms_viewer.state import session as sessions
from lsms_viewer.state.history import UndoHistory
from lsms_viewer.state.view_state import ViewState
from lsms_viewer.views.restore_banner import RestoreBanner
from lsms_viewer.views.slice_view import SliceView


def view_state_of(view: SliceView) -> dict:
    """What the session keeps of ``view`` (the Autosaver asks for it on every save)."""
    return ViewState(int(view.current_slice), (view.window.width, view.window.level)).to_json()


class RecoveryController(QObject):
    def __init__(self, window: MainWindow, history: UndoHistory, autosaver: sessions.Autosaver,
                 open_path: Callable[[Path], bool]):
        """``open_path`` reads a study in the background (the opening controller's); a crashed session's
        labels are restored once its study has arrived."""
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.history = history
        self.autosaver = autosaver
        self._open_path = open_path
        self._pending_restore: sessions.SessionData | None = None
        self.last_restore: sessions.SessionData | None = None
        self.pending_question: RestoreBanner | None = None
        self.banner: RestoreBanner | None = None
        self.banner_dock = None
        self.document.events.volume_changed.connect(self._on_volume_changed)
        window.closing.connect(self._on_closing)
        QTimer.singleShot(0, self, self.offer_crash_recovery)

    def _on_closing(self) -> None:
        self.autosaver.save(clean_exit=True)

    def ask(self, title: str, text: str, answer: Callable[[bool], None]) -> RestoreBanner:
        """Ask yes/no in a banner docked at the top of the window; ``answer(bool)`` gets the reply.

        Never a dialog: a restore offer must not block a scripted or headless start, nor steal the
        window's focus and shortcuts while the user already works.
        """
        if self.banner is None:
            self.banner = RestoreBanner()
            self.banner_dock = self.window.add_dock(self.banner, "Saved work", Qt.DockWidgetArea.TopDockWidgetArea)

        def done(yes: bool) -> None:
            self.pending_question = None
            self.banner_dock.hide()
            answer(yes)

        self.banner.set_question(title, text, done)
        self.banner_dock.show()
        self.pending_question = self.banner
        return self.banner

    def offer_crash_recovery(self) -> None:
        """At start: offer the newest session of a viewer that crashed or was killed."""
        try:
            found = sessions.crashed_sessions(self.autosaver.folder)
        except OSError:
            return
        if not found or self.pending_question is not None:
            return
        data = found[0]
        text = (f"The viewer did not close properly last time. Restore your work?\n\n{data.describe()}"
                f"\n\n“Keep aside” keeps the session file in {data.path.parent}.")
        self.ask("Restore unsaved work", text, lambda yes: self._answer_crash(data, yes))

    def _answer_crash(self, data: sessions.SessionData, yes: bool) -> None:
        if not yes:
            sessions.set_aside(data.path)
            return
        source = data.source
        if source is None or not source.exists():
            self.window.statusBar().showMessage(f"Cannot reopen the study of the saved session ({source}); "
                                                "open it to get its labels back", 5000)
            return
        # The study is read in the background: the labels are restored when the volume arrives.
        self._pending_restore = data
        if not self._open_path(source):
            self._pending_restore = None
            self.window.statusBar().showMessage(f"Cannot reopen {source}; open it to get its labels back", 5000)

    def _on_volume_changed(self) -> None:
        data, self._pending_restore = self._pending_restore, None
        if data is not None:
            QTimer.singleShot(0, self, lambda: self.restore(data.path))
        else:
            QTimer.singleShot(0, self, self.offer_session_for_volume)

    def offer_session_for_volume(self) -> None:
        """On opening a study: offer the labels saved in its session, if any."""
        path = self.autosaver.path()
        if path is None or not path.exists() or self.document.labels or self.pending_question is not None:
            return
        try:
            data = sessions.read_session(path, masks=False)
        except sessions.SessionError:
            return
        if not data.header.get("labels") or not sessions.matches(data, self.document.volume):
            return

        def answer(yes: bool) -> None:
            if yes:
                self.restore(path)
            else:
                sessions.set_aside(path)

        self.ask("Restore labels", f"This study has saved work:\n\n{data.describe()}\n\nRestore it?", answer)

    def restore(self, path: Path) -> bool:
        """Replace the labels by those of a session file (the undo history starts afresh)."""
        try:
            data = sessions.read_session(path)
            sessions.restore_labels(self.document, data)
        except sessions.SessionError as exc:
            self.window.statusBar().showMessage(str(exc), 5000)
            return False
        view = ViewState.from_json(data.header.get("view"))
        if view.slice_index is not None:
            self.window.slice_view.set_slice(view.slice_index)
        if view.window is not None:
            from lsms_viewer.display.windowing import Window

            self.window.slice_view.set_window(Window(*view.window))
        self.history.clear()
        self.autosaver.save()
        self.last_restore = data
        self.window.statusBar().showMessage(f"Restored {len(data.labels)} label(s) from {data.path.name}", 5000)
        return True
