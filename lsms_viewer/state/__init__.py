"""The viewer's Qt-free model: the open study and its labels, undo history, sessions, export, annotation.

Nothing here imports Qt (an import-linter contract checks it), so all of it is tested without a display.
"""
