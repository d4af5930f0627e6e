"""The `rate_limits` table: fixed-window counters shared by every process (migration 0005)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, Text
from sqlmodel import SQLModel

from backend.models.columns import INSTANT, column


class RateLimit(SQLModel, table=True):
    __tablename__ = "rate_limits"

    key: str = column(Text, primary_key=True)
    window_start: datetime = column(INSTANT, nullable=False)
    window_end: datetime = column(INSTANT, nullable=False)
    hits: int = column(Integer, nullable=False)
