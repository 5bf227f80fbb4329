"""What the slice view draws, computed without Qt: display windows and the label overlay's index image.

Nothing here imports Qt (an import-linter contract checks it).
"""
