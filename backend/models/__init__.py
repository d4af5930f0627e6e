"""SQLModel tables and schemas. Importing the package imports every module, found by name, so
every table is on `SQLModel.metadata` with no line here (the names below are re-exports)."""

import importlib
import pkgutil

from backend.models.common import ErrorEnvelope as ErrorEnvelope
from backend.models.common import ListMeta as ListMeta
from backend.models.idempotency import IdempotencyKey as IdempotencyKey
from backend.models.sharing import ListInvitation as ListInvitation
from backend.models.sharing import ListMember as ListMember
from backend.models.stream_ticket import StreamTicket as StreamTicket
from backend.models.stream_ticket import StreamTicketPublic as StreamTicketPublic
from backend.models.task import Priority as Priority
from backend.models.task import SortOrder as SortOrder
from backend.models.task import Task as Task
from backend.models.task import TaskCompletion as TaskCompletion
from backend.models.task import TaskCreate as TaskCreate
from backend.models.task import TaskPublic as TaskPublic
from backend.models.task import TaskReplace as TaskReplace
from backend.models.task import TaskRow as TaskRow
from backend.models.task import TaskSort as TaskSort
from backend.models.task import TaskStatus as TaskStatus
from backend.models.task import TaskUpdate as TaskUpdate
from backend.models.task_event import DeliveryState as DeliveryState
from backend.models.task_event import EventSink as EventSink
from backend.models.task_event import TaskEvent as TaskEvent
from backend.models.task_event import TaskEventsPruned as TaskEventsPruned
from backend.models.task_event import TaskMemberReminder as TaskMemberReminder
from backend.models.user import AuthSession as AuthSession
from backend.models.user import User as User
from backend.models.user import UserLogin as UserLogin
from backend.models.user import UserPublic as UserPublic
from backend.models.user import UserRegister as UserRegister
from backend.models.user import UserRow as UserRow

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
