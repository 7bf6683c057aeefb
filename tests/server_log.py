"""The live server's log lines, captured: it runs in a thread of the test process."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

# The hub's own loggers, strawberry's and SQLAlchemy's (which logs statements and, unless the
# engine hides them, their parameters), all turned up to INFO while captured.
LOUD = ("hub", "strawberry", "sqlalchemy.engine", "uvicorn.error")


class Captured(logging.Handler):
    """Every record any logger emits, formatted as an operator would see it (with tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def leaking(self, marker: str) -> list[str]:
        return [line for line in self.lines if marker in line]


@contextlib.contextmanager
def capturing() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in LOUD]
    levels = [logger.level for logger in loggers]
    root.addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.INFO)
        if not logger.propagate:
            logger.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
            logger.removeHandler(handler)
