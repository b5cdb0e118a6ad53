"""One module per CLI command.

Every command module is imported by ``ecgfill --help`` and by shell completion, so at top level
they import only typer, rich's console and ecgfill's console and errors; the library (numpy and
everything above it: ecgfill.api, batch, io, preprocess, train, evaluate) is imported inside
the command functions, which keeps that start-up free of numpy.
"""
