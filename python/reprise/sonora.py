"""py-sonora integration: journal a real ``sonora.Player`` and rebuild it after a crash.

- :func:`attach` wraps a player's (and its ``SmartQueue``'s, ``FilterManager``'s and
  ``AutoplayEngine``'s) mutating methods so that each mutation is appended to a reprise journal
  as contract events **before the call returns**, at the chosen durability.
- :func:`restore` (``await``) and :func:`restore_blocking` rebuild a fresh player from the
  journal: real ``Track`` objects in the queue and history, current track, volume, paused,
  position (extrapolated to now when Lavalink reported one), loop mode, shuffle, filters and
  autoplay; :func:`restore` also hands the Lavalink player update to the player's node.
- :class:`SnapshotManager` is a drop-in for py-sonora's class of the same name, backed by the
  journal: a Sonora bot switches with one import.

How a mutation becomes events: after the wrapped call, the attachment compares the player with
what the journal holds (a mirror of the journal's state in py-sonora terms, tracks compared by
identity) and emits the cheapest events that make the journal equal the player: ``volume_set``,
``paused_set``, ``seeked``, ``voice_connected``/``voice_disconnected``, ``tracks_enqueued``,
``track_removed``, ``track_moved``, ``queue_cleared``, ``track_started``, ``track_ended``,
``loop_mode_set``, ``shuffle_set``, ``filters_set``/``filters_cleared``, ``autoplay_set``. A
change no such sequence expresses (py-sonora's ``play`` and ``stop`` drop the current track
without putting it in the history, ``rewind`` and the loop-queue wrap take tracks out of the
history) is written as one ``state_restored`` event carrying the player's whole state. All the
events of one call go in one ``append_many`` (all or nothing). Nested calls (``skip`` calling
``queue.advance`` and ``play``) are journaled once, by the outermost call, so the journal never
holds a state between two of them.

Requires py-sonora (``pip install py-sonora==1.2.8 cryptography``); imported lazily.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import operator
import os
import tempfile
from collections import deque
from typing import Any, Dict, List, Optional, Sequence, Union

from ._reprise import Journal, Reprise

__all__ = [
    "Attachment",
    "SnapshotManager",
    "attach",
    "player_state",
    "restore",
    "restore_blocking",
]

# Methods wrapped by `attach`, per object (those py-sonora 1.2.8 has; a missing one is skipped).
PLAYER_METHODS_ASYNC = (
    "connect",
    "disconnect",
    "play",
    "pause",
    "resume",
    "stop",
    "seek",
    "set_volume",
    "set_filters",
    "skip",
    "skip_to",
)
QUEUE_METHODS_ASYNC = (
    "add",
    "add_multiple",
    "remove",
    "pop",
    "clear",
    "smart_shuffle",
    "perform_adaptive_reorder",
    "skip_to",
    "advance",
)
QUEUE_METHODS_SYNC = ("shuffle", "move", "rewind", "set_loop_mode")
FILTER_METHODS_SYNC = (
    "set_filter",
    "remove_filter",
    "clear_filters",
    "bass_boost",
    "nightcore",
    "vaporwave",
)
AUTOPLAY_METHODS_SYNC = ("configure",)

# py-sonora's filter names (`type(f).__name__.lower()`) -> the contract's filter config keys.
_FILTER_KEYS = {
    "equalizer": "equalizer",
    "karaoke": "karaoke",
    "timescale": "timescale",
    "tremolo": "tremolo",
    "vibrato": "vibrato",
    "rotation": "rotation",
    "distortion": "distortion",
    "channelmix": "channel_mix",
    "lowpass": "low_pass",
}
# Lavalink payload keys py-sonora's `to_dict` uses -> the contract's keys.
_PAYLOAD_KEYS = {"channelMix": "channel_mix", "lowPass": "low_pass"}
# The contract's config key -> (py-sonora filter name, pydantic field -> Lavalink field).
_FILTER_FIELDS = {
    "karaoke": {
        "level": "level",
        "mono_level": "monoLevel",
        "filter_band": "filterBand",
        "filter_width": "filterWidth",
    },
    "timescale": {"speed": "speed", "pitch": "pitch", "rate": "rate"},
    "tremolo": {"frequency": "frequency", "depth": "depth"},
    "vibrato": {"frequency": "frequency", "depth": "depth"},
    "rotation": {"rotation_hz": "rotationHz"},
    "distortion": {
        "sin_offset": "sinOffset",
        "sin_scale": "sinScale",
        "cos_offset": "cosOffset",
        "cos_scale": "cosScale",
        "tan_offset": "tanOffset",
        "tan_scale": "tanScale",
        "offset": "offset",
        "scale": "scale",
    },
    "channel_mix": {
        "left_to_left": "leftToLeft",
        "left_to_right": "leftToRight",
        "right_to_left": "rightToLeft",
        "right_to_right": "rightToRight",
    },
    "low_pass": {"smoothing": "smoothing"},
}
_TRACKS_PER_EVENT_MAX = 10_000
_NO_VOICE_CHANNEL = "0"

# The attachments whose wrapped call is running in this task / thread: a nested wrapped call
# (skip -> queue.advance -> play) is journaled by the outermost one only.
_ACTIVE: contextvars.ContextVar[frozenset] = contextvars.ContextVar(
    "reprise_sonora_active", default=frozenset()
)


def _sonora() -> Any:
    import sonora  # noqa: PLC0415 (py-sonora is optional: imported when used)

    return sonora


def _guild_of(player: Any, guild: Optional[int]) -> int:
    return int(player.guild_id) if guild is None else int(guild)


# --- tracks -------------------------------------------------------------------------------


def track_to_event(track: Any) -> Dict[str, Any]:
    """A py-sonora ``Track`` as a contract §1 track object (``encoded`` is ``track.track``;
    the Lavalink ``info`` fields map to ``title``, ``author``, ``uri``, ``identifier``,
    ``length_ms``, ``is_stream``, ``is_seekable``, ``source``, ``artwork_url``, ``isrc``)."""
    info = track.info
    out: Dict[str, Any] = {"encoded": track.track, "title": str(info.get("title", ""))}
    for key, field in (
        ("author", "author"),
        ("uri", "uri"),
        ("identifier", "identifier"),
        ("sourceName", "source"),
        ("artworkUrl", "artwork_url"),
        ("isrc", "isrc"),
    ):
        value = info.get(key)
        if value is not None:
            out[field] = str(value)
    if info.get("length") is not None:
        out["length_ms"] = int(info["length"])
    if info.get("isStream") is not None:
        out["is_stream"] = bool(info["isStream"])
    if info.get("isSeekable") is not None:
        out["is_seekable"] = bool(info["isSeekable"])
    return out


def track_from_state(track: Dict[str, Any]) -> Any:
    """A journaled track (contract form) as a py-sonora ``Track`` whose ``info`` has every
    Lavalink v4 field (``position`` 0; absent optional fields ``None``)."""
    return _sonora().Track(
        track=track["encoded"],
        info={
            "identifier": track.get("identifier", ""),
            "isSeekable": track.get("is_seekable", True),
            "author": track.get("author", ""),
            "length": track.get("length_ms", 0),
            "isStream": track.get("is_stream", False),
            "position": 0,
            "title": track["title"],
            "uri": track.get("uri"),
            "artworkUrl": track.get("artwork_url"),
            "isrc": track.get("isrc"),
            "sourceName": track.get("source"),
        },
    )


# --- filters and autoplay -------------------------------------------------------------------


def _filters_of(player: Any) -> Dict[str, Any]:
    """The player's filters as the contract's ``{"active", "config"}``."""
    manager = player.filters
    config: Dict[str, Any] = {}
    for f in manager.filters.values():
        for key, value in f.to_dict().items():
            config[_PAYLOAD_KEYS.get(key, key)] = json.loads(json.dumps(value))
    return {"active": list(manager.filters.keys()), "config": config}


def _filter_objects(active: Sequence[str], config: Dict[str, Any]) -> Dict[str, Any]:
    """py-sonora ``Filter`` objects for a journaled filter state: the names in ``active`` in
    order, then every other config key (a Sonora file written by py-sonora has no names)."""
    sonora = _sonora()
    classes = {
        "equalizer": sonora.filters.Equalizer,
        "karaoke": sonora.filters.Karaoke,
        "timescale": sonora.filters.Timescale,
        "tremolo": sonora.filters.Tremolo,
        "vibrato": sonora.filters.Vibrato,
        "rotation": sonora.filters.Rotation,
        "distortion": sonora.filters.Distortion,
        "channel_mix": sonora.filters.ChannelMix,
        "low_pass": sonora.filters.LowPass,
    }
    config = {_PAYLOAD_KEYS.get(k, k): v for k, v in config.items()}
    by_key = {key: name for name, key in _FILTER_KEYS.items()}
    order = [_FILTER_KEYS[n] for n in active if n in _FILTER_KEYS]
    order += [k for k in config if k in classes and k not in order]
    out: Dict[str, Any] = {}
    for key in order:
        if key not in config:
            continue
        value = config[key]
        if key == "equalizer":
            f = classes[key](bands=[dict(b) for b in value])
        else:
            fields = {
                attr: value[lava]
                for attr, lava in _FILTER_FIELDS[key].items()
                if value.get(lava) is not None
            }
            f = classes[key](**fields)
        out[by_key[key]] = f
    return out


def _autoplay_of(player: Any) -> Dict[str, Any]:
    a = player.autoplay
    return {
        "enabled": bool(a.enabled),
        "strategy": str(a.strategy),
        "fallback_playlist": None if a.fallback_playlist is None else str(a.fallback_playlist),
        "max_history": int(a.max_history),
        "smart_shuffle": bool(a.smart_shuffle),
    }


# --- the mirror: what the journal holds, in py-sonora terms ------------------------------------


class _View:
    """One player's journaled fields (tracks by reference)."""

    __slots__ = (
        "history",
        "current",
        "upcoming",
        "volume",
        "paused",
        "position",
        "loop_mode",
        "shuffle",
        "filters",
        "autoplay",
        "voice",
    )

    @classmethod
    def of(cls, player: Any, voice_hint: Dict[str, Any]) -> "_View":
        v = cls()
        q = player.queue
        v.history = list(q._history)
        v.current = q._current
        v.upcoming = list(q._upcoming)
        v.volume = int(player.volume)
        v.paused = bool(player.paused)
        v.position = int(player.position)
        v.loop_mode = str(q.loop_mode)
        v.shuffle = bool(q.shuffle_enabled)
        v.filters = _filters_of(player)
        v.autoplay = _autoplay_of(player)
        if player.connected:
            voice = {
                "session_id": str(player.session_id or ""),
                "channel_id": voice_hint.get("channel_id", _NO_VOICE_CHANNEL),
            }
            for key in ("endpoint", "token"):
                if voice_hint.get(key) is not None:
                    voice[key] = voice_hint[key]
            v.voice = voice
        else:
            v.voice = None
        return v


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether two track lists hold the same objects in the same order."""
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _enqueue(tracks: Sequence[Any], index: Optional[int]) -> List[Dict[str, Any]]:
    events = []
    for start in range(0, len(tracks), _TRACKS_PER_EVENT_MAX):
        chunk = tracks[start : start + _TRACKS_PER_EVENT_MAX]
        event: Dict[str, Any] = {
            "type": "tracks_enqueued",
            "tracks": [track_to_event(t) for t in chunk],
        }
        if index is not None:
            event["index"] = index + start
        events.append(event)
    return events


def _upcoming_events(old: List[Any], new: List[Any]) -> List[Dict[str, Any]]:
    """Events turning the upcoming queue ``old`` into ``new`` (always possible)."""
    if _same(old, new):
        return []
    if not new:
        return [{"type": "queue_cleared"}]
    n0, n1 = len(old), len(new)
    p = 0
    while p < min(n0, n1) and old[p] is new[p]:
        p += 1
    s = 0
    while s < min(n0, n1) - p and old[n0 - 1 - s] is new[n1 - 1 - s]:
        s += 1
    if n1 > n0 and p + s == n0:
        return _enqueue(new[p : n1 - s], p if p < n0 else None)
    if n1 == n0 - 1 and p + s == n1:
        return [{"type": "track_removed", "index": p}]
    if n1 == n0:
        a, b = p, n0 - 1 - s
        if new[b] is old[a] and _same(new[a:b], old[a + 1 : b + 1]):
            return [{"type": "track_moved", "from": a, "to": b}]
        if new[a] is old[b] and _same(new[a + 1 : b + 1], old[a:b]):
            return [{"type": "track_moved", "from": b, "to": a}]
    events: List[Dict[str, Any]] = [] if not old else [{"type": "queue_cleared"}]
    return events + _enqueue(new, None)


def _queue_events(old: _View, new: _View, history_len_max: Optional[int]):
    """``(events, position_reset)`` for the queue part, or ``None`` when no cheap sequence
    expresses the change."""

    def trimmed(h: List[Any]) -> List[Any]:
        return h if history_len_max is None else h[-history_len_max:]

    if new.current is old.current and _same(new.history, old.history):
        return _upcoming_events(old.upcoming, new.upcoming), False
    after_end = trimmed(old.history + [old.current]) if old.current is not None else old.history
    if new.current is not None and _same(new.history, after_end):
        events = _upcoming_events(old.upcoming, [new.current] + new.upcoming)
        return events + [{"type": "track_started"}], True
    if new.current is None and old.current is not None and _same(new.history, after_end):
        events = [{"type": "track_ended", "reason": "finished"}]
        return events + _upcoming_events(old.upcoming, new.upcoming), True
    return None


class _Restore:
    """A ``state_restored`` event for a view, materialized when its entry ids are known."""

    __slots__ = ("view",)

    def __init__(self, view: _View) -> None:
        self.view = view


def _seek_applies(view: _View, position: int) -> bool:
    current = view.current
    if current is None or position < 0:
        return False
    info = current.info
    length = int(info.get("length") or 0)
    return length == 0 or bool(info.get("isStream")) or position <= length


def _diff(old: _View, new: _View, history_len_max: Optional[int]) -> List[Any]:
    """The events turning the journaled ``old`` into ``new`` (a ``_Restore`` when needed)."""
    queue = _queue_events(old, new, history_len_max)
    if queue is None:
        return [_Restore(new)]
    events, position_reset = queue
    if new.voice != old.voice:
        if new.voice is None:
            events.append({"type": "voice_disconnected"})
        else:
            events.append({"type": "voice_connected", **new.voice})
    if new.volume != old.volume:
        events.append({"type": "volume_set", "volume": new.volume})
    if new.paused != old.paused:
        events.append({"type": "paused_set", "paused": new.paused})
    position = 0 if position_reset else old.position
    if new.position != position:
        if not _seek_applies(new, new.position):
            return [_Restore(new)]
        events.append({"type": "seeked", "position_ms": new.position})
    if new.loop_mode != old.loop_mode:
        events.append({"type": "loop_mode_set", "mode": new.loop_mode})
    if new.shuffle != old.shuffle:
        events.append({"type": "shuffle_set", "enabled": new.shuffle})
    if new.filters != old.filters:
        if not new.filters["active"] and not new.filters["config"]:
            events.append({"type": "filters_cleared"})
        else:
            events.append({"type": "filters_set", **new.filters})
    if new.autoplay != old.autoplay:
        autoplay = {k: v for k, v in new.autoplay.items() if v is not None}
        events.append({"type": "autoplay_set", **autoplay})
    return events


# --- attach -------------------------------------------------------------------------------


class Attachment:
    """The handle :func:`attach` returns: journals the player's mutations until
    :meth:`detach`.

    With a blocking :class:`reprise.Journal`, every wrapped method (async or not) appends before
    it returns (an async method blocks the event loop for the append). With an asyncio
    :class:`reprise.Reprise`, the wrapped async methods ``await`` the append; the wrapped
    **sync** methods (``queue.shuffle``, ``queue.move``, ``queue.rewind``,
    ``queue.set_loop_mode``, the filter manager's methods, ``autoplay.configure``) cannot await,
    so their change is journaled by the next awaited wrapped call of this player or by
    ``await attachment.flush()``: nothing they did is acknowledged before that. Direct attribute
    writes (``player.volume = 50``) are journaled the same way, by the next wrapped call or
    :meth:`flush` / :meth:`sync`. ``player.destroy()`` ends the guild's session
    (``session_ended``: a later restore gives an empty player) and detaches.
    """

    def __init__(
        self, player: Any, journal: Union[Journal, Reprise], durability: str, guild: int
    ) -> None:
        if durability not in ("always", "batched", "none"):
            raise ValueError(
                f'durability must be "always", "batched" or "none", not {durability!r}'
            )
        self.player = player
        self.journal = journal
        self.durability = durability
        self.guild = guild
        self._is_async = isinstance(journal, Reprise)
        self._voice_hint: Dict[str, Any] = {}
        self._wrapped: List[tuple] = []
        self._view: Optional[_View] = None
        self._ready = False
        self._resync = True
        self._meta: Dict[str, Any] = {}
        self._history_max = 50
        self._next_id = 1
        self._lock: Optional[asyncio.Lock] = None
        maxlen = getattr(player.queue._history, "maxlen", None)
        self._history_len_max: Optional[int] = maxlen
        self._wrap_all()
        if not self._is_async:
            self._adopt(journal.state(guild))
            self.sync()

    # The journal's state this attachment builds on: meta (kept), history_max, entry ids.
    def _adopt(self, state: Dict[str, Any]) -> None:
        self._meta = state.get("meta") or {}
        self._history_max = int(state.get("history_max", 50))
        self._next_id = int(state.get("next_entry_id", 1))
        self._ready = True

    def _materialize(self, events: List[Any]):
        next_id = self._next_id
        out = []
        for event in events:
            if isinstance(event, _Restore):
                event, next_id = self._restore_event(event.view, next_id)
            elif event["type"] == "tracks_enqueued":
                next_id += len(event["tracks"])
            out.append(event)
        return out, next_id

    def _restore_event(self, view: _View, next_id: int):
        def entry(track: Any) -> Dict[str, Any]:
            nonlocal next_id
            e = {"id": next_id, "track": track_to_event(track)}
            next_id += 1
            return e

        history = view.history[-self._history_max :] if self._history_max else []
        state = {
            "autoplay": {k: v for k, v in view.autoplay.items()},
            "filters": view.filters,
            "history_max": self._history_max,
            "meta": self._meta,
            "player": {
                "paused": view.paused,
                "position_anchor_unix_ms": None,
                "position_ms": max(0, view.position),
                "voice": view.voice,
                "volume": view.volume,
            },
            "queue": {
                "history": [entry(t) for t in history],
                "current": None if view.current is None else entry(view.current),
                "upcoming": [entry(t) for t in view.upcoming],
                "loop_mode": view.loop_mode,
                "shuffle": view.shuffle,
                "shuffle_seed": None,
            },
        }
        state["next_entry_id"] = next_id
        return {"type": "state_restored", "state": state, "label": "sonora"}, next_id

    def _pending(self):
        """``(view, events)``: the player now and the events the journal lacks."""
        view = _View.of(self.player, self._voice_hint)
        if self._resync or self._view is None:
            return view, [_Restore(view)]
        return view, _diff(self._view, view, self._history_len_max)

    def _committed(self, view: _View, next_id: int) -> None:
        self._view = view
        self._next_id = next_id
        self._resync = False

    def sync(self) -> None:
        """Journals what the player changed since the last journaled call (blocking
        :class:`reprise.Journal` only; with a :class:`reprise.Reprise` use :meth:`flush`)."""
        if self._is_async:
            raise TypeError("sync() needs a blocking reprise.Journal; await flush() instead")
        view, events = self._pending()
        if not events:
            self._view = view
            return
        batch, next_id = self._materialize(events)
        try:
            self.journal.append_many(self.guild, batch, self.durability)
        except BaseException:
            self._resync = True
            raise
        self._committed(view, next_id)

    async def flush(self) -> None:
        """Journals, and waits for, what the player changed since the last journaled call
        (either handle kind)."""
        if not self._is_async:
            self.sync()
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._ready:
                self._adopt(await self.journal.state(self.guild))
            view, events = self._pending()
            if not events:
                self._view = view
                return
            batch, next_id = self._materialize(events)
            try:
                await self.journal.append_many(self.guild, batch, self.durability)
            except BaseException:
                self._resync = True
                raise
            self._committed(view, next_id)

    # --- wrapping ---

    def _wrap_all(self) -> None:
        p = self.player
        for name in PLAYER_METHODS_ASYNC:
            self._wrap(p, name, is_async=True)
        self._wrap_destroy()
        for name in QUEUE_METHODS_ASYNC:
            self._wrap(p.queue, name, is_async=True)
        for name in QUEUE_METHODS_SYNC:
            self._wrap(p.queue, name, is_async=False)
        for name in FILTER_METHODS_SYNC:
            self._wrap(p.filters, name, is_async=False)
        for name in AUTOPLAY_METHODS_SYNC:
            self._wrap(p.autoplay, name, is_async=False)

    def _wrap(self, obj: Any, name: str, *, is_async: bool) -> None:
        original = getattr(obj, name, None)
        if original is None or not callable(original):
            return
        me = id(self)
        hint = self._voice_hint
        node = getattr(self.player, "node", None)

        def note_voice(args: tuple, kwargs: dict) -> None:
            if obj is self.player and name == "connect":
                bound = dict(zip(("channel_id", "session_id", "token"), args))
                bound.update(kwargs)
                hint.clear()
                hint["channel_id"] = str(bound.get("channel_id", _NO_VOICE_CHANNEL))
                if bound.get("token") is not None:
                    hint["token"] = str(bound["token"])
                if getattr(node, "host", None) is not None:
                    hint["endpoint"] = str(node.host)

        if is_async:

            @functools.wraps(original)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                active = _ACTIVE.get()
                if me in active:
                    return await original(*args, **kwargs)
                note_voice(args, kwargs)
                token = _ACTIVE.set(active | {me})
                try:
                    return await original(*args, **kwargs)
                finally:
                    _ACTIVE.reset(token)
                    await self.flush()

        else:

            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                active = _ACTIVE.get()
                if me in active or self._is_async:
                    return original(*args, **kwargs)
                token = _ACTIVE.set(active | {me})
                try:
                    return original(*args, **kwargs)
                finally:
                    _ACTIVE.reset(token)
                    self.sync()

        had_own = name in getattr(obj, "__dict__", {})
        setattr(obj, name, wrapper)
        self._wrapped.append((obj, name, had_own, original))

    def _wrap_destroy(self) -> None:
        original = getattr(self.player, "destroy", None)
        if original is None or not callable(original):
            return

        @functools.wraps(original)
        async def destroy(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            ended = [{"type": "session_ended"}]
            if self._is_async:
                await self.journal.append_many(self.guild, ended, self.durability)
            else:
                self.journal.append_many(self.guild, ended, self.durability)
            self.detach()
            return result

        had_own = "destroy" in self.player.__dict__
        setattr(self.player, "destroy", destroy)
        self._wrapped.append((self.player, "destroy", had_own, original))

    def detach(self) -> None:
        """Stops journaling: puts the original methods back. Changes not yet journaled (with a
        :class:`reprise.Reprise`, sync-method changes since the last awaited call) are not
        written; ``await flush()`` first to keep them."""
        for obj, name, had_own, original in reversed(self._wrapped):
            if had_own:
                setattr(obj, name, original)
            else:
                try:
                    delattr(obj, name)
                except AttributeError:
                    pass
        self._wrapped.clear()


def attach(
    player: Any,
    journal: Union[Journal, Reprise],
    durability: str = "always",
    *,
    guild: Optional[int] = None,
) -> Attachment:
    """Journals every mutation made through ``player`` (a py-sonora ``Player``), its queue,
    filter manager and autoplay engine into ``journal`` (a :class:`reprise.Journal` or
    :class:`reprise.Reprise`) for guild ``guild`` (default ``player.guild_id``), each appended
    at ``durability`` before the call returns. The first write makes the journaled guild equal
    the player as it is now (one ``state_restored``; the guild's ``meta`` is kept): immediately
    with a ``Journal``, at the first awaited wrapped call (or ``await flush()``) with a
    ``Reprise``. Returns the :class:`Attachment` (``detach()`` stops it).

    Open the journal with ``history_max=100`` to keep py-sonora's whole history (100 tracks);
    with less, a restore gives the newest ``history_max``.
    """
    return Attachment(player, journal, durability, _guild_of(player, guild))


# --- restore ------------------------------------------------------------------------------


def _apply_state(player: Any, state: Dict[str, Any], body: Dict[str, Any]) -> None:
    """Makes ``player`` equal the journaled ``state`` (position from the Lavalink ``body``)."""
    q = player.queue
    st_queue = state["queue"]
    maxlen = getattr(q._history, "maxlen", None)
    history = [track_from_state(e["track"]) for e in st_queue["history"]]
    q._history = deque(history, maxlen=maxlen)
    q._upcoming = deque(track_from_state(e["track"]) for e in st_queue["upcoming"])
    current = st_queue.get("current")
    q._current = None if current is None else track_from_state(current["track"])
    q.loop_mode = st_queue["loop_mode"]
    q.shuffle_enabled = bool(st_queue["shuffle"])
    st_player = state["player"]
    player.volume = int(st_player["volume"])
    player.paused = bool(st_player["paused"])
    # Extrapolated (Lavalink's body) only from a reported anchor; otherwise the journaled
    # position as py-sonora had it (the body clamps it to the track's length).
    anchored = current is not None and st_player.get("position_anchor_unix_ms") is not None
    position = body.get("position") if anchored else None
    player.position = int(st_player["position_ms"] if position is None else position)
    voice = st_player.get("voice")
    player.connected = voice is not None
    player.session_id = None if voice is None else voice["session_id"]
    filters = state["filters"]
    player.filters.filters = _filter_objects(filters["active"], filters["config"])
    autoplay = state["autoplay"]
    engine = player.autoplay
    engine.enabled = bool(autoplay["enabled"])
    engine.strategy = autoplay["strategy"]
    for key in ("fallback_playlist", "max_history", "smart_shuffle"):
        if autoplay.get(key) is not None:
            setattr(engine, key, autoplay[key])


async def _send_to_node(node: Any, guild: int, body: Dict[str, Any]) -> None:
    """Hands the Lavalink v4 player update ``body`` to ``node``: ``await
    node.update_player(guild, body)`` when the node has it (a Lavalink v4 REST client);
    otherwise in py-sonora's own node protocol (``node.send(op, **data)``, as its ``Player``
    does): ``voiceUpdate``, then ``play`` (``track``, ``startTime``, ``volume``, ``pause``),
    then ``filters``."""
    update = getattr(node, "update_player", None)
    if callable(update):
        await update(guild, body)
        return
    send = getattr(node, "send", None)
    if not callable(send):
        return
    voice = body.get("voice")
    if voice:
        event = {"token": voice.get("token"), "endpoint": voice.get("endpoint")}
        await send("voiceUpdate", guildId=guild, sessionId=voice.get("sessionId"), event=event)
    encoded = (body.get("track") or {}).get("encoded")
    if encoded:
        await send(
            "play",
            guildId=guild,
            track=encoded,
            startTime=body.get("position", 0),
            volume=body.get("volume", 100),
            pause=body.get("paused", False),
            noReplace=False,
        )
    if body.get("filters"):
        await send("filters", guildId=guild, **body["filters"])


async def restore(
    player: Any,
    journal: Union[Journal, Reprise],
    guild: Optional[int] = None,
    *,
    now_unix_ms: Optional[int] = None,
    send: bool = True,
) -> Dict[str, Any]:
    """Makes ``player`` (a fresh py-sonora ``Player``) equal the journaled guild (default
    ``player.guild_id``): real ``Track`` objects in queue and history, current track, volume,
    paused, position (extrapolated to ``now_unix_ms``, default now, from the last Lavalink
    position report when playing), voice (``connected``, ``session_id``), loop mode, shuffle,
    filters and autoplay. With ``send`` and a player ``node``, hands it the Lavalink v4 PATCH
    body (see ``_send_to_node``). Returns that body (``journal.lavalink(guild)``). A guild with
    nothing journaled leaves the player as it is."""
    guild = _guild_of(player, guild)
    if isinstance(journal, Reprise):
        state = await journal.state(guild)
        body = await journal.lavalink(guild, now_unix_ms)
    else:
        state = journal.state(guild)
        body = journal.lavalink(guild, now_unix_ms)
    if state["seq"] == 0:
        return body  # nothing journaled for the guild: the player stays as it is
    _apply_state(player, state, body)
    node = getattr(player, "node", None)
    if send and node is not None:
        await _send_to_node(node, guild, body)
    return body


def restore_blocking(
    player: Any, journal: Journal, guild: Optional[int] = None, *, now_unix_ms: Optional[int] = None
) -> Dict[str, Any]:
    """:func:`restore` for a blocking :class:`reprise.Journal`, outside an event loop: rebuilds
    the player but sends nothing to its node; returns the Lavalink PATCH body to send."""
    guild = _guild_of(player, guild)
    state = journal.state(guild)
    body = journal.lavalink(guild, now_unix_ms)
    if state["seq"] > 0:
        _apply_state(player, state, body)
    return body


def player_state(player: Any) -> Dict[str, Any]:
    """The journaled fields of a py-sonora player as plain data (tracks as ``{"track",
    "info"}``), for comparing two players field by field."""

    def track(t: Any) -> Any:
        return None if t is None else {"track": t.track, "info": dict(t.info)}

    q = player.queue
    return {
        "upcoming": [track(t) for t in q.upcoming],
        "history": [track(t) for t in q.history],
        "current": track(q.current),
        "volume": player.volume,
        "paused": player.paused,
        "position": player.position,
        "connected": player.connected,
        "session_id": player.session_id if player.connected else None,
        "loop_mode": q.loop_mode,
        "shuffle_enabled": q.shuffle_enabled,
        "filters": {name: f.to_dict() for name, f in player.filters.filters.items()},
        "autoplay": _autoplay_of(player),
    }


# --- the SnapshotManager drop-in -------------------------------------------------------------


def _sonora_track(track: Any) -> Dict[str, Any]:
    info = track.info
    return {
        "title": info.get("title", ""),
        "author": info.get("author", ""),
        "uri": info.get("uri") or "",
        "identifier": info.get("identifier", ""),
        "length": info.get("length", 0),
        "position": info.get("position", 0),
        "isStream": bool(info.get("isStream", False)),
        "isSeekable": bool(info.get("isSeekable", True)),
        "track": track.track,
    }


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class SnapshotManager:
    """A drop-in for py-sonora's ``sonora.SnapshotManager`` backed by a reprise journal: same
    method names and signatures, same file names and format (py-sonora 1.2.8's
    ``load_snapshot`` loads every file this writes), but

    - ``save_snapshot`` also imports the snapshot into the journal (durable when it returns),
      and writes its file atomically (temporary file, fsync, rename);
    - ``create_snapshot`` captures what py-sonora's leaves out (the active filter names, each
      track's stream and seekable flags);
    - ``restore_snapshot`` rebuilds real ``Track`` objects, filters and autoplay on the player
      (py-sonora's leaves placeholders), through the journal;
    - ``start_auto_snapshot`` really snapshots: every ``auto_snapshot_interval`` seconds it
      saves the players it has seen (``create_snapshot``) and compacts the journal.

    ``journal`` is a blocking :class:`reprise.Journal` (the methods are synchronous, as
    py-sonora's are); without one, the manager opens one in ``snapshot_dir/journal``.
    """

    def __init__(
        self, snapshot_dir: str = ".sonora_snapshots", *, journal: Optional[Journal] = None
    ) -> None:
        self.snapshot_dir = snapshot_dir
        self.auto_snapshot_interval = 300
        self.max_snapshots_per_guild = 10
        self._background_task: Optional[asyncio.Task] = None
        self._running = False
        self._players: Dict[int, Any] = {}
        os.makedirs(snapshot_dir, exist_ok=True)
        if journal is not None and not isinstance(journal, Journal):
            raise TypeError("SnapshotManager needs a blocking reprise.Journal")
        self._owns_journal = journal is None
        self.journal = (
            journal if journal is not None else Journal(os.path.join(snapshot_dir, "journal"))
        )

    def close(self) -> None:
        """Closes the journal this manager opened (not one it was given)."""
        if self._owns_journal:
            self.journal.close()

    async def start_auto_snapshot(self) -> None:
        """Starts the background task (a no-op when running)."""
        if self._running:
            return
        self._running = True
        self._background_task = asyncio.create_task(self._auto_snapshot_loop())

    async def stop_auto_snapshot(self) -> None:
        """Stops the background task."""
        self._running = False
        if self._background_task:
            self._background_task.cancel()
            try:
                await self._background_task
            except asyncio.CancelledError:
                pass

    async def _auto_snapshot_loop(self) -> None:
        while self._running:
            await asyncio.sleep(self.auto_snapshot_interval)
            self.snapshot_all()

    def snapshot_all(self) -> List[str]:
        """Saves a snapshot of every player seen by :meth:`create_snapshot`, then compacts the
        journal (what each auto-snapshot round does). Returns the files written."""
        paths = [self.save_snapshot(self.create_snapshot(p)) for p in list(self._players.values())]
        self.journal.snapshot()
        return paths

    def create_snapshot(self, player: Any) -> Any:
        """A py-sonora ``SessionSnapshot`` of ``player`` now (the sections py-sonora writes:
        player, queue, filters, autoplay)."""
        snapshot = _sonora().SessionSnapshot(player.guild_id)
        self._players[int(player.guild_id)] = player
        q = player.queue
        filters = _filters_of(player)
        payload = player.filters.to_payload()
        snapshot.data = {
            "player": {
                "volume": player.volume,
                "paused": player.paused,
                "position": player.position,
                "connected": player.connected,
                "session_id": player.session_id,
            },
            "queue": {
                "current": _sonora_track(q.current) if q.current else None,
                "upcoming": [_sonora_track(t) for t in q.upcoming],
                "history": [_sonora_track(t) for t in q.history[-50:]],
                "loop_mode": q.loop_mode,
                "shuffle_enabled": q.shuffle_enabled,
            },
            "filters": {"active_filters": filters["active"], "filter_config": payload},
            "autoplay": {
                k: v for k, v in _autoplay_of(player).items() if k != "fallback_playlist"
            },
        }
        return snapshot

    def save_snapshot(self, snapshot: Any, filename: Optional[str] = None) -> str:
        """Imports ``snapshot`` into the journal (the guild's state becomes the snapshot's;
        refused with :class:`reprise.InvalidEvent`, nothing written, when it is not valid),
        then writes its file (``guild_{id}_{timestamp}.json`` by default) atomically and drops
        the guild's files beyond ``max_snapshots_per_guild``. Returns the file's path."""
        data = snapshot.to_dict()
        self.journal.import_sonora([data])
        if not filename:
            filename = f"guild_{snapshot.guild_id}_{int(snapshot.timestamp)}.json"
        filepath = os.path.join(self.snapshot_dir, filename)
        _write_atomically(filepath, json.dumps(data, indent=2, default=str))
        self._cleanup_old_snapshots(snapshot.guild_id)
        return filepath

    def export_snapshot(self, guild_id: int, filename: Optional[str] = None) -> str:
        """Writes the journal's current state of ``guild_id`` as a Sonora file (what ``reprise
        export --format sonora`` writes) into ``snapshot_dir``; returns its path."""
        data = self.journal.sonora(int(guild_id))
        if not filename:
            filename = f"guild_{guild_id}_{int(data['timestamp'])}.json"
        filepath = os.path.join(self.snapshot_dir, filename)
        _write_atomically(filepath, json.dumps(data, indent=2))
        self._cleanup_old_snapshots(guild_id)
        return filepath

    def load_snapshot(self, filepath: str) -> Any:
        """Loads a snapshot file as py-sonora does (checksum verified)."""
        sonora = _sonora()
        if not os.path.exists(filepath):
            raise sonora.SonoraError(f"Snapshot file not found: {filepath}")
        with open(filepath) as f:
            return sonora.SessionSnapshot.from_json(f.read())

    def list_snapshots(self, guild_id: Optional[int] = None) -> List[str]:
        """The snapshot file names in ``snapshot_dir``, newest first (as py-sonora)."""
        if not os.path.exists(self.snapshot_dir):
            return []
        names = [f for f in os.listdir(self.snapshot_dir) if f.endswith(".json")]
        if guild_id is not None:
            names = [f for f in names if f.startswith(f"guild_{guild_id}_")]
        return sorted(names, reverse=True)

    def _cleanup_old_snapshots(self, guild_id: int) -> None:
        for name in self.list_snapshots(guild_id)[self.max_snapshots_per_guild :]:
            try:
                os.remove(os.path.join(self.snapshot_dir, name))
            except OSError:
                pass

    async def restore_snapshot(self, snapshot: Any, player: Any) -> None:
        """Makes ``player`` equal ``snapshot``: the snapshot is imported into the journal (for
        the snapshot's guild) and the player rebuilt from it as :func:`restore` does (real
        ``Track`` objects, filters, autoplay), without sending anything to the node."""
        self.journal.import_sonora([snapshot.to_dict()])
        guild = int(snapshot.guild_id)
        restore_blocking(player, self.journal, guild)

