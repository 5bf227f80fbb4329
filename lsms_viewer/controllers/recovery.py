"""Never losing work: the session autosave, the offer to restore after a crash or on reopening a study,
and restoring.

The ``Autosaver`` (Qt-free, ``lsms_viewer.state.session``) saves after every undo step; this controller
adds what needs the window: the clean-exit save when it closes, and the questions, asked in a banner
docked at the top of the window (``RestoreBanner``), never in a modal dialog.
"""

from __future__ import annotations

import contextlib
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
        self.offered: sessions.SessionData | None = None  # the session on offer, moved aside while asked
        self.pending_question: RestoreBanner | None = None
        self.banner: RestoreBanner | None = None
        self.banner_dock = None
        self.document.events.volume_changed.connect(self._on_volume_changed)
        autosaver.state_changed.connect(self.show_autosave_state)
        window.closing.connect(self._on_closing)
        QTimer.singleShot(0, self, self.start)

    def start(self) -> None:
        """At start: say at once when the session folder cannot be written, then offer a crashed session."""
        self.autosaver.check_folder()
        self.offer_crash_recovery()

    def _on_closing(self) -> None:
        self.autosaver.close_study()

    # -- what the autosave cannot do, said where it stays visible ---------------------------------------
    def show_autosave_state(self) -> None:
        """A notice above the image while autosave fails or shares its study with another live viewer."""
        autosaver = self.autosaver
        folder = autosaver.session_folder()
        if autosaver.last_error:
            text = (f"Autosave is not working: {autosaver.last_error}. Labels are not kept for crash recovery "
                    f"in {folder}: export them (File ▸ Export labels) or make the folder writable.")
            self.window.show_notice(text, key="autosave")
            self.window.statusBar().showMessage(f"Autosave failed in {folder}", 15000)
        else:
            self.window.clear_notice("autosave")
        if autosaver.shared_with is not None:
            who = f"pid {autosaver.shared_with}" if autosaver.shared_with > 0 else "a process"
            path = autosaver.path()
            text = (f"This study is open in another viewer ({who}). Its session is left alone: this window "
                    f"saves its labels beside it, in {path.name if path else 'a file of its own'} ({folder}); "
                    "the two are not merged.")
            self.window.show_notice(text, key="shared")
        else:
            self.window.clear_notice("shared")

    def _note_unreadable(self, problems: list[str]) -> None:
        if not problems:
            return
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        self.window.show_notice(f"{len(problems)} session file(s) could not be read and were skipped (the "
                                f"others are offered as usual): {shown}", key="sessions")

    # -- questions -------------------------------------------------------------------------------------
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

    def _hold(self, data: sessions.SessionData) -> sessions.SessionData:
        """Move a session on offer aside, so nothing saved while the question waits can write over it.

        It keeps its suffix: a crash before the answer offers it again. When it cannot be moved (the
        folder is not writable), nothing can be saved over it either.
        """
        with contextlib.suppress(OSError):
            data.path = sessions.move_aside(data.path, "offered", offerable=True)
        self.offered = data
        return data

    def offer_crash_recovery(self) -> None:
        """Offer the newest session of a viewer that crashed or was killed; unreadable files are named."""
        scan = sessions.scan_sessions(self.autosaver.folder)
        self._note_unreadable(scan.problems)
        found = sessions.crashed_sessions(scan=scan)
        if not found or self.pending_question is not None:
            return
        data = self._hold(found[0])
        text = (f"The viewer did not close properly while {data.study} was open. Restore its work?"
                f"\n\n{data.describe()}"
                f"\n\n“Keep aside” keeps the session file in {data.path.parent}.")
        self.ask("Restore unsaved work", text, lambda yes: self._answer_crash(data, yes))

    def _answer_crash(self, data: sessions.SessionData, yes: bool) -> None:
        if not yes:
            self._decline(data.path)
            return
        volume = self.document.volume
        if volume is not None and sessions.matches(data, volume) and volume.source is not None \
                and data.source == Path(volume.source).resolve():
            self.restore(data.path)  # the study is open already (opened while the question waited)
            return
        source = data.source
        if source is None or not source.exists():
            self.window.statusBar().showMessage(f"Cannot reopen the study of the saved session ({source}); "
                                                "open it to get its labels back", 15000)
            return
        # The study is read in the background: the labels are restored when the volume arrives.
        self._pending_restore = data
        if not self._open_path(source):
            self._pending_restore = None
            self.window.statusBar().showMessage(f"Cannot reopen {source}; open it to get its labels back", 15000)

    def _decline(self, path: Path) -> None:
        self.offered = None
        try:
            kept = sessions.set_aside(path)
        except OSError as exc:
            self.window.statusBar().showMessage(f"Could not set {path.name} aside ({exc}); it stays in "
                                                f"{path.parent}", 15000)
            return
        self.window.statusBar().showMessage(f"Saved work kept aside as {kept}", 15000)

    def _on_volume_changed(self) -> None:
        data, self._pending_restore = self._pending_restore, None
        if data is not None:
            QTimer.singleShot(0, self, lambda: self.restore(data.path))
        else:
            QTimer.singleShot(0, self, self.offer_session_for_volume)

    def offer_session_for_volume(self) -> None:
        """On opening a study: offer the newest labels saved for it that no live viewer is working on."""
        volume = self.document.volume
        if volume is None or self.document.labels or self.pending_question is not None:
            return
        scan = sessions.saved_sessions(volume, self.autosaver.folder)
        self._note_unreadable(scan.problems)
        if not scan.sessions:
            return
        data = self._hold(scan.sessions[0])
        others = len(scan.sessions) - 1
        more = (f"\n\n{others} other saved session(s) of this study stay in {data.path.parent}."
                if others else "")
        path = data.path

        def answer(yes: bool) -> None:
            if yes:
                self.restore(path)
            else:
                self._decline(path)

        self.ask("Restore labels", f"This study has saved work:\n\n{data.describe()}{more}\n\nRestore it?",
                 answer)

    def restore(self, path: Path) -> bool:
        """Replace the labels by those of a session file (the undo history starts afresh).

        Labels drawn since the study was opened are not lost: the session holding them is kept aside
        first, and the message says where.
        """
        try:
            data = sessions.read_session(path, volume=self.document.volume)
            kept = self._keep_current_work(Path(path))
            sessions.restore_labels(self.document, data)
        except (sessions.SessionError, OSError) as exc:
            self.window.statusBar().showMessage(f"Not restored: {exc}", 15000)
            return False
        view = ViewState.from_json(data.header.get("view"))
        saved_view = data.header.get("view") if isinstance(data.header.get("view"), dict) else {}
        data.notes += self.window.planes.rulers.load(saved_view.get("rulers", []))
        volume = self.document.volume
        if view.slice_index is not None:
            if 0 <= view.slice_index < volume.shape[0]:
                self.window.slice_view.set_slice(view.slice_index)
            else:
                data.notes.append(f"the saved slice {view.slice_index} lies outside the study's "
                                  f"{volume.shape[0]} slices: the view stays where it is")
        if view.window is not None:
            from lsms_viewer.display.windowing import Window

            self.window.slice_view.set_window(Window(*view.window))
        self.history.clear()
        self.autosaver.save()
        if Path(path) != self.autosaver.path():
            with contextlib.suppress(OSError):  # restored: kept, never offered again
                sessions.move_aside(Path(path), "restored")
        self.offered = None
        self.last_restore = data
        message = f"Restored {len(data.labels)} label(s)" + (f" and {data.rulers} ruler(s)" if data.rulers else "")
        message += f" of {data.study}"
        if kept is not None:
            message += f"; the labels drawn before restoring are kept in {kept}"
        self.window.statusBar().showMessage(message, 30000)
        if data.notes:
            self.window.show_notice(f"Restored from {data.path.name} with gaps: " + "; ".join(data.notes[:5])
                                    + (f"; and {len(data.notes) - 5} more" if len(data.notes) > 5 else ""),
                                    key="restore")
        else:
            self.window.clear_notice("restore")
        return True

    def _keep_current_work(self, restoring: Path) -> Path | None:
        """Move the open study's own session aside before a restore replaces its labels (None: nothing to keep)."""
        target = self.autosaver.path()
        if target is None or target == restoring or not target.exists():
            return None
        try:
            current = sessions.read_session(target, masks=False)
        except sessions.SessionError:
            current = None
        if current is not None and not current.has_work:
            return None
        return sessions.move_aside(target, "before-restore")
