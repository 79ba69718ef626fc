"""What the command's subcommands share: where a command finds its backend."""

from __future__ import annotations

from kqueue.backends import Backend, open_backend
from kqueue.job import App


def backend_from(args) -> Backend:
    """The backend named by ``--backend``, else the one of the ``--app``'s App.

    Raises:
        KQueueError: the ``--app`` spec does not name an importable ``kqueue.App``.
        ValueError: the backend URL's scheme is unknown.
    """
    if getattr(args, "backend", None):
        return open_backend(args.backend)
    return App.from_spec(args.app).backend
