"""The `rate_limits` table: fixed-window counters shared by every process (migration 0005)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Integer, Text
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel


class RateLimit(SQLModel, table=True):
    __tablename__ = "rate_limits"

    key: str = SQLField(sa_column=Column(Text, primary_key=True))
    window_start: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False))
    window_end: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False))
    hits: int = SQLField(sa_column=Column(Integer, nullable=False))
