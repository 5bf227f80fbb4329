"""``lsms bench render`` and ``lsms bench undo`` (registered through entry points), and the screenshots."""
