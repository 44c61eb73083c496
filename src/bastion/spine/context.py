"""Who is acting, from where, why, and on what."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from bastion.core.errors import InvalidInput
from bastion.core.ids import new_request_id

_PURPOSE = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,63}$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class PrincipalType(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    SERVICE = "service"
    OPERATOR = "operator"  # the local CLI operator, authenticated by possession of the state


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    type: PrincipalType
    auth_method: str
    attributes: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_anonymous(self) -> bool:
        return self.type is PrincipalType.ANONYMOUS


ANONYMOUS = Principal(id="anonymous", type=PrincipalType.ANONYMOUS, auth_method="none")
# Bastion's own background jobs (checkpointing, export). Holds only the grants it is given, like anyone.
SYSTEM = Principal(id="system:bastion", type=PrincipalType.SERVICE, auth_method="internal")


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is about. ``attributes`` feed attribute-based policies: ``classification`` (public,
    internal, confidential, restricted), ``region``, ``owner`` (a principal id). They are not part of the
    resource's identity."""

    type: str
    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Context:
    """All a service method knows of its caller. Built by an interface, never by a service."""

    principal: Principal
    request_id: str = field(default_factory=new_request_id)
    source_address: str | None = None
    user_agent: str | None = None
    purpose: str | None = None
    # Where the data this request reads or copies goes (a region), when that is not where it is stored.
    destination: str | None = None

    def __post_init__(self) -> None:
        if self.destination is not None and not _REGION.fullmatch(self.destination):
            raise InvalidInput(
                "The destination region is not a valid region name.",
                remedy="Use a lowercase region name such as 'eu-west-1'.",
            )
        if self.purpose is not None and not _PURPOSE.fullmatch(self.purpose):
            raise InvalidInput(
                "The declared purpose is not a valid purpose name.",
                remedy="Use 1-64 lowercase letters, digits, '.', '_', ':' or '-'.",
            )
