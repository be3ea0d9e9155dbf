"""Placeholder: this sub-command is being written (replace this module)."""


def register(subparsers) -> None:  # noqa: ANN001
    pass
