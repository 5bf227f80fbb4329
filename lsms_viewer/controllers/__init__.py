"""One controller per job of the window: opening studies, export, segmentation runs, editing, recovery.

Each gets the window and the Qt-free state it works on through its constructor (``lsms_viewer.app`` builds
them all), adds its actions to the window's menus, and never looks another controller up.
"""
