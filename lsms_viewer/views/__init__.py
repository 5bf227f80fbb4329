"""The window's widgets: slice view, expression bar, label, measurement, annotation and editing panels, and
the restore banner. They show the Document and emit what the user asks for; controllers act on it."""
