"""The ``lsms`` command line: thin argument parsing that calls the core modules."""
