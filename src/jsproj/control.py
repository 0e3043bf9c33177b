"""``jsproj.control``, the documented import path of :mod:`jsproj.projections.operations`."""

from jsproj.follow.daemon.poison import DeadLetter
from jsproj.projections.operations import Rebuilt, Retried, list_dead_letters, rebuild, retry

__all__ = ["DeadLetter", "Rebuilt", "Retried", "list_dead_letters", "rebuild", "retry"]
