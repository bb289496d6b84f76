"""The one place that wires the stages together (used by the CLI, the daemon and the web front).

fetch -> parse -> store -> topics -> summarize -> build issue -> render -> send.
"""
