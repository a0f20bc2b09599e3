"""Follow a bridge as a WebSocket client and print its events, one line each."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bridge.exceptions import TailError

__all__ = ["line", "tail"]


def line(event: dict[str, Any]) -> str:
    """``time type audience data``: one event in one line."""
    when = str(event.get("timestamp", "?"))
    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
        when = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        pass
    audience = event.get("audience") or {}
    who = audience.get("kind", "?")
    if who != "all":
        who = f"{who}:{audience.get(who, '?')}"
    data = json.dumps(event.get("data"), separators=(",", ":"), ensure_ascii=False)
    return f"{when} {event.get('type', '?')} {who} {data}"


async def tail(
    url: str,
    *,
    token: str | None,
    renew: Callable[[], str] | None = None,
    types: Collection[str],
    raw: bool,
    history: bool,
    out: Callable[[str], None],
    say: Callable[[str], None],
) -> None:
    """Print the events arriving at ``url`` until the connection ends.

    ``out`` gets one line per event (JSON as received when ``raw``), ``say``
    what is not an event. Only ``types`` are printed when it is not empty.
    ``renew`` makes a new token when the bridge asks for one before ``token``
    expires; without it, the connection ends when the token does.
    With ``history`` the bridge first replays the events it keeps. Raises
    :class:`TailError` when the bridge cannot be reached, refuses the token, or
    closes the connection.
    """
    if token:
        url += ("&" if "?" in url else "?") + "token=" + quote(token, safe="")
    try:
        async with connect(url, open_timeout=10) as ws:
            welcome = json.loads(await ws.recv())
            say(
                f"connected to instance {welcome.get('instance')} as "
                f"{welcome.get('user') or 'anonymous'}"
                + (f" (roles {', '.join(welcome['roles'])})" if welcome.get("roles") else "")
            )
            # Live events wait until the first message: ask for the history, or just start.
            await ws.send(json.dumps({"op": "resume"} if history else {"op": "ping"}))
            async for message in ws:
                decoded = json.loads(message)
                # A batch (?batch=1) is a list of events.
                for item in decoded if isinstance(decoded, list) else [decoded]:
                    if renew is not None and item.get("type") == "bridge:refresh":
                        await ws.send(json.dumps({"op": "auth", "token": renew()}))
                    _show(item, types, raw, out, say)
    except InvalidStatus as exc:
        body = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
        raise TailError(
            f"{url.split('?')[0]} refused the connection: "
            f"HTTP {exc.response.status_code} {body}".rstrip()
        ) from exc
    except ConnectionClosed as exc:
        close = exc.rcvd
        why = f"{close.code} {close.reason}".strip() if close else "no close frame"
        raise TailError(f"the bridge closed the connection: {why}") from exc
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise TailError(f"cannot connect to {url.split('?')[0]}: {exc}") from exc
    raise TailError("the bridge closed the connection")


def _show(
    item: dict[str, Any],
    types: Collection[str],
    raw: bool,
    out: Callable[[str], None],
    say: Callable[[str], None],
) -> None:
    kind = str(item.get("type", ""))
    if kind.startswith("bridge:"):
        if kind not in {"bridge:pong", "bridge:welcome", "bridge:refresh"}:
            say(json.dumps(item, separators=(",", ":"), ensure_ascii=False))
        return
    if types and kind not in types:
        return
    out(json.dumps(item, separators=(",", ":"), ensure_ascii=False) if raw else line(item))
