"""One module per CLI command (or small family of commands)."""
