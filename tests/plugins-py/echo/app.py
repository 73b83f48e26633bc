"""py-echo: `echo TEXT` replies with the text, as a componentize-py plugin of world `plugin`.

Built (from the repository root, componentize-py 0.25.1) with:
    componentize-py -d wit -w plugin componentize app -p tests/plugins-py/echo -o py-echo.wasm
"""

from typing import List

import wit_world
from wit_world.imports import types


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Manifest:
        echo = types.CommandSpec(
            name="echo",
            description="Says the text back",
            aliases=[],
            options=[],
            permissions=[],
            staff_only=False,
            cooldown=None,
            localizations=[],
        )
        return types.Manifest(
            name="py-echo",
            version="0.1.0",
            description="Replies with the text after the command (Python)",
            commands=[echo],
            events=[],
            capabilities=[],
            enabled_by_default=True,
        )

    def handle(self, event: types.Event) -> List[types.Action]:
        if not isinstance(event.kind, types.EventKind_Command):
            return []
        reply = types.Outgoing(
            text=event.kind.value.raw_args,
            embeds=[],
            buttons=[],
            menu=None,
            media=[],
            template=None,
            ephemeral=False,
            mentions=types.AllowedMentions(users=[], roles=[], everyone=False),
        )
        return [types.Action_Reply(reply)]
