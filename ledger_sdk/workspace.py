"""The workspace a client's credentials reach (seed 001: ``await client.get_workspace()``,
then ``response.workspace.name``). On both clients, like the other mixins."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger_sdk.operations import Operations

GET_WORKSPACE = "query GetWorkspace { workspace { id name } }"


@dataclass
class Workspace:
    id: str
    name: str


@dataclass
class GetWorkspaceResult:
    """The answer of ``get_workspace()``, shaped as seed 001 reads it."""

    workspace: Workspace

    @classmethod
    def from_wire(cls, data: dict) -> "GetWorkspaceResult":
        return cls(Workspace(id=data["id"], name=data["name"]))


class WorkspaceMixin(Operations):
    def get_workspace(self) -> Any:
        """``GetWorkspaceResult``: ``.workspace.id`` and ``.workspace.name`` (the
        deployment's LEDGER_WORKSPACE_NAME)."""
        return self._call(GET_WORKSPACE, {}, "workspace", GetWorkspaceResult.from_wire)
