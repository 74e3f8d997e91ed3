"""The server's recent log as every door shows it: one entry per line it logged, newest last."""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field, JsonValue


class LogLevel(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


LEVEL_RANK = {LogLevel.INFO: 20, LogLevel.WARNING: 30, LogLevel.ERROR: 40}  # as the logging module ranks them


class LogEntry(BaseModel):
    id: int = Field(description="Ever larger within one server's life: ask again with after=<the last id>.")
    at: float
    level: str
    logger: str
    message: str
    fields: dict[str, JsonValue] = Field(description="What the line is about: its action, item, run, error, ...")


class LogQuery(BaseModel):
    level: LogLevel = LogLevel.INFO
    after: int = Field(default=0, ge=0)
    limit: int = Field(default=200, ge=1, le=2000)
