"""One module per CLI command. Modules import only light things at top level."""
