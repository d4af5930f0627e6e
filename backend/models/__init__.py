"""SQLModel tables and the request/response schemas built around them.

Importing this package registers every table on `SQLModel.metadata` (used by the
migrations-vs-models test, never to create tables): every module of the package is imported,
found by name, so a new resource's table needs no line here (the names below are re-exports).
"""

import importlib
import pkgutil

from backend.models.chatkit_item import ChatKitItem
from backend.models.common import DataEnvelope, ErrorEnvelope, ListEnvelope, ListMeta
from backend.models.conversation import Conversation, Message
from backend.models.idempotency import IdempotencyKey
from backend.models.rate_limit import RateLimit
from backend.models.sharing import ListInvitation, ListMember, Role, TaskComment
from backend.models.stream_ticket import StreamTicket, StreamTicketPublic
from backend.models.task import (
    Priority,
    SortOrder,
    Task,
    TaskCompletion,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TaskRow,
    TaskSort,
    TaskStatus,
    TaskUpdate,
)
from backend.models.task_event import (
    ChangeType,
    DeliveryState,
    TaskEvent,
    TaskEventsPruned,
    TaskMemberReminder,
    TaskReminder,
)
from backend.models.user import AuthSession, User, UserLogin, UserPublic, UserRegister, UserRow

__all__ = [
    "AuthSession",
    "ChangeType",
    "ChatKitItem",
    "Conversation",
    "DataEnvelope",
    "DeliveryState",
    "ErrorEnvelope",
    "IdempotencyKey",
    "ListEnvelope",
    "ListInvitation",
    "ListMember",
    "ListMeta",
    "Message",
    "Priority",
    "RateLimit",
    "Role",
    "SortOrder",
    "StreamTicket",
    "StreamTicketPublic",
    "Task",
    "TaskComment",
    "TaskCompletion",
    "TaskCreate",
    "TaskEvent",
    "TaskEventsPruned",
    "TaskMemberReminder",
    "TaskPublic",
    "TaskReminder",
    "TaskReplace",
    "TaskRow",
    "TaskSort",
    "TaskStatus",
    "TaskUpdate",
    "User",
    "UserLogin",
    "UserPublic",
    "UserRegister",
    "UserRow",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
