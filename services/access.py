"""Who the bot serves: everyone (ACCESS_MODE=open), or admins and the users they approved.

Background work asks the same question as the chat does: a user an administrator denied gets
no balance alerts, delivery reports or bulk sending either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from storage.users import Access


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    allowlist: bool = False
    admin_ids: frozenset[int] = frozenset()

    def admits(self, user_id: int, access: Access | None) -> bool:
        if not self.allowlist or user_id in self.admin_ids:
            return True
        return access == Access.ALLOWED


# Everyone is served: the default where no ACCESS_MODE reaches (tests, tools).
OPEN: Final = AccessPolicy()
