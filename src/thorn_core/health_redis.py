"""Endpoint health in Redis, shared by every worker and web process of a site.

Each endpoint is one hash (breaker, token bucket, window buckets, slow mark) and one sorted
set of in-flight leases, updated by Lua scripts so that concurrent processes never see half
an update: two workers racing for one token get one token. A key holding anything Thorn
did not write (another type, unparsable fields) is reset, not trusted. While Redis cannot
be reached, a :class:`~thorn_core.health.MemoryHealthStore` stands in, with one warning a
minute, so deliveries go on.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis

from .health import (
    WINDOW_BUCKETS,
    Admission,
    CircuitState,
    EndpointStatus,
    MemoryHealthStore,
    Transition,
    lease_for,
)
from .settings import Settings
from .telemetry import get_logger
from .validators import display_url

__all__ = ["DEFAULT_PREFIX", "RedisHealthStore"]

logger = get_logger(__name__)

#: Prefix of every key the store writes.
DEFAULT_PREFIX = "thorn:health:"
#: Seconds between two warnings that Redis is unreachable.
WARN_EVERY = 60.0
#: Seconds the store uses its memory fallback after Redis failed, before trying Redis again.
RETRY_REDIS_AFTER = 1.0
#: Seconds a circuit this process saw closed (in the answer to its latest record) admits
#: deliveries without limits here, with no round trip: another process's opening of it is
#: seen that much later at most. Limited deliveries (rate, in-flight cap) always ask Redis.
LOCAL_CLOSED_TTL = 0.25

_T = TypeVar("_T")

# Shared by the scripts: load a hash (resetting it when it holds garbage), and write back
# only the fields a script changed (``put``), so a delivery costs a few field writes.
_LOAD = """
local function fmt(x) return string.format('%.6f', x) end
local h, dirty = {}, {}
local function load(key)
  local raw = redis.pcall('HGETALL', key)
  if type(raw) == 'table' and raw.err then redis.call('DEL', key); return end
  local t = {}
  for i = 1, #raw, 2 do t[raw[i]] = raw[i + 1] end
  for name, v in pairs(t) do
    if name == 'state' then
      if v ~= 'closed' and v ~= 'open' and v ~= 'half_open' then
        redis.call('DEL', key); return
      end
    elseif tonumber(v) == nil then
      redis.call('DEL', key); return
    end
  end
  h = t
end
local function put(name, v) h[name] = v; dirty[name] = true end
local function save(key, ttl)
  local set, gone = {}, {}
  for name in pairs(dirty) do
    local v = h[name]
    if v == nil then
      gone[#gone + 1] = name
    else
      set[#set + 1] = name
      set[#set + 1] = (type(v) == 'number') and fmt(v) or v
    end
  end
  if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
  redis.call('EXPIRE', key, ttl)
end
"""

# KEYS: hash, in-flight zset. ARGV: now, rate ('' none), cap ('' none), lease, ttl.
_ADMIT = (
    _LOAD
    + """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
load(KEYS[1])
local state = h.state or 'closed'
local probe = 0
if state == 'open' then
  local at = tonumber(h.next_probe_at) or 0
  if now < at then return {0, 'circuit_open', fmt(at), 0} end
  probe = 1
elseif state == 'half_open' then
  local at = tonumber(h.probe_until)
  if at and now < at then return {0, 'circuit_open', fmt(at), 0} end
  probe = 1
end
local r = redis.pcall('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now))
if type(r) == 'table' and r.err then redis.call('DEL', KEYS[2]) end
if cap and redis.call('ZCARD', KEYS[2]) >= cap then
  return {0, 'max_in_flight', fmt(now + 1), 0}
end
if rate then
  local tokens = 1
  local at = tonumber(h.tokens_at)
  if at then tokens = math.min(1, (tonumber(h.tokens) or 0) + math.max(0, now - at) * rate) end
  if tokens < 1 - 1e-6 then
    return {0, 'rate_limited', fmt(now + (1 - tokens) / rate), 0}
  end
  put('tokens', math.max(0, tokens - 1)); put('tokens_at', now)
end
put('seq', (tonumber(h.seq) or 0) + 1)
redis.call('ZADD', KEYS[2], fmt(now + lease), tostring(h.seq))
redis.call('EXPIRE', KEYS[2], ttl)
if probe == 1 then put('state', 'half_open'); put('probe_until', now + lease) end
save(KEYS[1], ttl)
return {1, '', '', probe}
"""
)

# KEYS: hash. ARGV: now, ok, duration, timed_out, width, min_requests, failure_rate,
# cooloff, cooloff_max, slow_threshold, ttl, buckets, passive ('1': counts only), count
# (of these attempts, all alike).
_RECORD = (
    _LOAD
    + """
local now = tonumber(ARGV[1])
local ok = ARGV[2] == '1'
local duration = tonumber(ARGV[3])
local timed_out = ARGV[4] == '1'
local width = tonumber(ARGV[5])
local min_requests = tonumber(ARGV[6])
local failure_rate = tonumber(ARGV[7])
local cooloff = tonumber(ARGV[8])
local cooloff_max = tonumber(ARGV[9])
local slow = tonumber(ARGV[10])
local ttl = tonumber(ARGV[11])
local nb = tonumber(ARGV[12])
local passive = ARGV[13] == '1'
local count = tonumber(ARGV[14]) or 1
load(KEYS[1])
local index = math.floor(now / width)
local slot = index % nb
local bi, br, bf = 'b' .. slot .. 'i', 'b' .. slot .. 'r', 'b' .. slot .. 'f'
local requests, failures = 0, 0
if tonumber(h[bi]) == index then
  requests = tonumber(h[br]) or 0; failures = tonumber(h[bf]) or 0
else
  put(bi, index)
end
put(br, requests + count)
if not ok or failures > 0 then put(bf, failures + (ok and 0 or 1)) end
if ok then
  if h.streak then put('streak', nil); put('streak_since', nil) end
else
  put('streak', (tonumber(h.streak) or 0) + 1)
  if not h.streak_since then put('streak_since', now) end
end
if timed_out or duration > slow then
  put('slow_until', now + cooloff)
elseif ok and h.slow_until then
  put('slow_until', nil)
end
local state = h.state or 'closed'
local transition = ''
local function window()
  local total, failed = 0, 0
  for s = 0, nb - 1 do
    local at = tonumber(h['b' .. s .. 'i'])
    if at and at > index - nb and at <= index then
      total = total + (tonumber(h['b' .. s .. 'r']) or 0)
      failed = failed + (tonumber(h['b' .. s .. 'f']) or 0)
    end
  end
  return total, failed
end
if passive then
  -- an attempt admitted while the circuit was closed, reported late: it moves no circuit
elseif state == 'half_open' then
  if ok then
    put('state', 'closed'); put('opened_at', nil); put('next_probe_at', nil)
    put('cooloff', nil); put('probe_until', nil)
    for s = 0, nb - 1 do
      put('b' .. s .. 'i', nil); put('b' .. s .. 'r', nil); put('b' .. s .. 'f', nil)
    end
    transition = 'closed'
  else
    local c = (tonumber(h.cooloff) or 0) * 2
    if c <= 0 then c = cooloff end
    c = math.min(c, cooloff_max)
    put('cooloff', c); put('state', 'open'); put('opened_at', now)
    put('next_probe_at', now + c); put('probe_until', nil)
  end
elseif state == 'closed' and not ok then
  local total, failed = window()
  if total >= min_requests and failed >= failure_rate * total then
    put('cooloff', cooloff); put('state', 'open'); put('opened_at', now)
    put('next_probe_at', now + cooloff)
    transition = 'opened'
  end
end
save(KEYS[1], ttl)
local total, failed = window()
local function opt(v) if v then return fmt(tonumber(v)) end return '' end
return {h.state or 'closed', total, failed, opt(h.opened_at), opt(h.next_probe_at),
  tonumber(h.streak) or 0, opt(h.streak_since), opt(h.slow_until), transition}
"""
)

# KEYS: streak hash. ARGV: now, ok, ttl. Returns the streak's length.
_STREAK = """
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]); return 0 end
local t = redis.pcall('TYPE', KEYS[1])
local kind = type(t) == 'table' and t.ok or t
if kind ~= 'none' and kind ~= 'hash' then redis.call('DEL', KEYS[1]) end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local since = redis.call('HGET', KEYS[1], 'since')
if n == nil or (since and tonumber(since) == nil) then
  redis.call('DEL', KEYS[1]); n = 0; since = false
end
n = n + 1
if not since then redis.call('HSET', KEYS[1], 'since', ARGV[1]) end
redis.call('HSET', KEYS[1], 'n', tostring(n))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return n
"""


#: The SHA1 of each script, as EVALSHA wants it.
_SHAS = {
    script: hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    for script in (_ADMIT, _RECORD, _STREAK)
}
#: Each script by its SHA1.
_SCRIPTS = {sha: script for script, sha in _SHAS.items()}


def _float(value: Any) -> float | None:
    if value in (None, b"", ""):
        return None
    return float(value)


class RedisHealthStore:
    """Endpoint health in Redis at ``url`` (see the module docstring).

    Args:
        url: a ``redis://`` (or ``rediss://``, ``unix://``) URL.
        settings: the app's settings (breaker thresholds, slow threshold).
        prefix: the prefix of every key written; tests give each their own.
    """

    def __init__(self, url: str, settings: Settings, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.url = url
        self.settings = settings
        self.prefix = prefix
        self._lease = lease_for(settings)
        self._ttl = math.ceil(
            max(
                2 * settings.circuit_window,
                2 * settings.circuit_cooloff_max,
                2 * self._lease,
                3600.0,
            )
        )
        self._streak_ttl = math.ceil(max(2 * settings.failure_window, 86400.0))
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        #: Commands that need no answer (releases, streak resets), sent with the next call.
        self._pending: list[tuple[Any, ...]] = []
        #: Endpoint -> queued fast successes (sent as one counted record).
        self._queued_ok: dict[str, int] = {}
        #: Subscribers whose streak reset is queued.
        self._queued_resets: set[str] = set()
        #: Stands in while Redis is unreachable.
        self.fallback = MemoryHealthStore(settings)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._warned_at: float | None = None
        #: See :data:`LOCAL_CLOSED_TTL`; 0 asks Redis for every admission.
        self.local_ttl = LOCAL_CLOSED_TTL
        #: Endpoint -> monotonic time until which it is taken as closed here.
        self._closed_until: dict[str, float] = {}
        #: Endpoint -> admissions granted here without a lease (their release frees none).
        self._unleased: dict[str, int] = {}

    def _key(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def _later(self, *command: Any) -> None:
        """Send ``command`` with the next call (one round trip for both): a release or a
        streak reset needs no answer, and the next call of a delivering process comes at
        once. :meth:`close` sends what is left."""
        with self._lock:
            self._pending.append(command)

    def _take_pending(self) -> list[tuple[Any, ...]]:
        """Every queued command, the queued successes and resets folded into one each."""
        with self._lock:
            pending, self._pending = self._pending, []
            successes, self._queued_ok = self._queued_ok, {}
            resets, self._queued_resets = self._queued_resets, set()
        if successes:
            now = time.time()
            for key, count in successes.items():
                args = self._record_args(now, True, 0.0, False, passive=True, count=count)
                pending.append(("EVALSHA", _SHAS[_RECORD], 1, self._key(key), *args))
        pending.extend(("DEL", key) for key in resets)
        return pending

    def _eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` (by its SHA, loading it when Redis lacks it) after the commands
        kept by :meth:`_later`, in one round trip."""
        pending = self._take_pending()
        sha = _SHAS[script]
        reply: Any
        if pending:
            pipe = self.client.pipeline(transaction=False)
            for command in pending:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            pipe.evalsha(sha, len(keys), *keys, *args)
            replies = pipe.execute(raise_on_error=False)
            self._reload(pending, replies)
            reply = replies[-1]
        else:
            try:
                reply = self.client.evalsha(sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError as exc:
                reply = exc
        if isinstance(reply, redis.exceptions.NoScriptError):
            reply = self.client.eval(script, len(keys), *keys, *args)  # caches it, too
        elif isinstance(reply, Exception):
            raise reply
        return reply

    def flush(self) -> None:
        """Send the commands kept by :meth:`_later` now."""
        pending = self._take_pending()
        if pending:
            pipe = self.client.pipeline(transaction=False)
            for command in pending:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            self._reload(pending, pipe.execute(raise_on_error=False))

    def _reload(self, pending: list[tuple[Any, ...]], replies: list[Any]) -> None:
        """Run again, with the script's text, the kept scripts Redis had forgotten (it was
        restarted); other errors of kept commands are ignored (an admission resets garbage)."""
        for command, reply in zip(pending, replies, strict=False):
            if isinstance(reply, redis.exceptions.NoScriptError):
                self.client.eval(_SCRIPTS[command[1]], *command[2:])

    def _call(self, key: str | None, work: Callable[[], _T], fallback: Callable[[], _T]) -> _T:
        """``work()`` against Redis; on a garbage key reset it and try once more; while
        Redis is unreachable ``fallback()`` (the memory store), warning once a minute."""
        if time.monotonic() < self._down_until:
            return fallback()
        try:
            try:
                return work()
            except redis.ResponseError:
                if key is None:
                    raise
                # A key another program wrote (or a half-written one): start it afresh.
                logger.warning("Endpoint health of %s held unusable data; reset", key)
                self.client.delete(self._key(key), self._key(key) + ":f")
                return work()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError) as exc:
            self._down(exc)
            return fallback()

    def _down(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._down_until = now + RETRY_REDIS_AFTER
            if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
                return
            self._warned_at = now
        logger.warning(
            "Endpoint health: Redis at %s is unreachable (%s); using this process's memory "
            "until it is back",
            display_url(self.url),
            exc,
        )

    def admit(
        self,
        key: str,
        *,
        rate_limit: float | None,
        max_in_flight: int | None,
        now: float | None = None,
    ) -> Admission:
        """Check the breaker, the token bucket and the in-flight cap, atomically.

        A delivery without limits to an endpoint this process saw closed within
        :data:`LOCAL_CLOSED_TTL` is admitted here (when ``now`` is not given).
        """
        if (
            now is None
            and rate_limit is None
            and max_in_flight is None
            and self._closed_until.get(key, 0.0) > time.monotonic()
        ):
            with self._lock:
                self._unleased[key] = self._unleased.get(key, 0) + 1
            return Admission(True)
        now = time.time() if now is None else now
        k = self._key(key)

        def work() -> Admission:
            allowed, reason, retry_at, probe = self._eval(
                _ADMIT,
                [k, k + ":f"],
                [
                    repr(now),
                    "" if rate_limit is None else repr(float(rate_limit)),
                    "" if max_in_flight is None else str(max_in_flight),
                    repr(self._lease),
                    self._ttl,
                ],
            )
            if allowed:
                if not probe and self.local_ttl > 0:  # only a closed circuit admits so
                    self._closed_until[key] = time.monotonic() + self.local_ttl
                return Admission(True, None, None, bool(probe))
            return Admission(False, reason.decode(), float(retry_at), False)

        return self._call(
            key,
            work,
            lambda: self.fallback.admit(
                key, rate_limit=rate_limit, max_in_flight=max_in_flight, now=now
            ),
        )

    def release(self, key: str) -> None:
        """Free the oldest in-flight lease of ``key`` (none for an admission made here)."""
        with self._lock:
            unleased = self._unleased.get(key, 0)
            if unleased:
                self._unleased[key] = unleased - 1
                return
        if time.monotonic() < self._down_until:
            self.fallback.release(key)
        else:
            self._later("ZPOPMIN", self._key(key) + ":f")

    def _record_args(
        self,
        now: float,
        ok: bool,
        duration: float,
        timed_out: bool,
        *,
        passive: bool,
        count: int = 1,
    ) -> list[Any]:
        s = self.settings
        return [
            repr(now),
            "1" if ok else "0",
            repr(float(duration)),
            "1" if timed_out else "0",
            repr(s.circuit_window / WINDOW_BUCKETS),
            s.circuit_min_requests,
            repr(float(s.circuit_failure_rate)),
            repr(float(s.circuit_cooloff)),
            repr(float(s.circuit_cooloff_max)),
            repr(float(s.slow_threshold)),
            self._ttl,
            WINDOW_BUCKETS,
            "1" if passive else "0",
            count,
        ]

    def record(
        self,
        key: str,
        *,
        ok: bool,
        duration: float,
        timed_out: bool = False,
        now: float | None = None,
    ) -> EndpointStatus:
        """Count an attempt and move the breaker, atomically.

        A fast success (the healthy path) to an endpoint this process saw closed within
        :data:`LOCAL_CLOSED_TTL`, at the current time, is sent with the next round trip
        instead of one of its own, and counts without moving the circuit (the probe of a
        half-open one decides); the status returned is then this process's view: closed,
        not slow, without counts.
        """
        s = self.settings
        if (
            now is None
            and ok
            and not timed_out
            and duration <= s.slow_threshold
            and self._closed_until.get(key, 0.0) > time.monotonic()
        ):
            with self._lock:
                self._queued_ok[key] = self._queued_ok.get(key, 0) + 1
            return EndpointStatus(key)
        now = time.time() if now is None else now

        def work() -> EndpointStatus:
            reply = self._eval(
                _RECORD,
                [self._key(key)],
                self._record_args(now, ok, duration, timed_out, passive=False),
            )
            state, total, failed, opened, probe_at, streak, since, slow, transition = reply
            total, failed = int(total), int(failed)
            change: Transition | None = transition.decode() or None
            return EndpointStatus(
                key=key,
                state=state.decode(),
                failure_rate=failed / total if total else 0.0,
                requests=total,
                failures=failed,
                opened_at=_float(opened),
                next_probe_at=_float(probe_at),
                failure_streak=int(streak),
                streak_since=_float(since),
                slow_until=_float(slow),
                transition=change,
            )

        status = self._call(
            key,
            work,
            lambda: self.fallback.record(
                key, ok=ok, duration=duration, timed_out=timed_out, now=now
            ),
        )
        if status.state == "closed" and self.local_ttl > 0:
            self._closed_until[key] = time.monotonic() + self.local_ttl
        else:
            self._closed_until.pop(key, None)
        return status

    def _parse(self, key: str, raw: dict[bytes, bytes], now: float) -> EndpointStatus:
        """The status of a hash as the scripts write it.

        Raises:
            ValueError: the hash holds garbage.
        """
        h = {name.decode(): value.decode() for name, value in raw.items()}
        state = h.get("state", "closed")
        if state not in ("closed", "open", "half_open"):
            raise ValueError(state)
        index = math.floor(now / (self.settings.circuit_window / WINDOW_BUCKETS))
        total = failed = 0
        for slot in range(WINDOW_BUCKETS):
            at = h.get(f"b{slot}i")
            if at is not None and index - WINDOW_BUCKETS < float(at) <= index:
                total += int(float(h.get(f"b{slot}r", 0)))
                failed += int(float(h.get(f"b{slot}f", 0)))
        slow = _float(h.get("slow_until"))
        circuit: CircuitState = state  # type: ignore[assignment]
        return EndpointStatus(
            key=key,
            state=circuit,
            failure_rate=failed / total if total else 0.0,
            requests=total,
            failures=failed,
            opened_at=_float(h.get("opened_at")),
            next_probe_at=_float(h.get("next_probe_at")),
            failure_streak=int(float(h.get("streak", 0))),
            streak_since=_float(h.get("streak_since")),
            slow_until=slow if slow is not None and slow > now else None,
        )

    def statuses(self, keys: Iterable[str]) -> dict[str, EndpointStatus]:
        """The status of each of ``keys``, read in one round trip; garbage reads as closed."""
        wanted = list(keys)

        def work() -> dict[str, EndpointStatus]:
            pending = self._take_pending()
            pipe = self.client.pipeline(transaction=False)
            for command in pending:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            for key in wanted:
                pipe.hgetall(self._key(key))
            replies = pipe.execute(raise_on_error=False)[len(pending) :]
            now = time.time()
            found: dict[str, EndpointStatus] = {}
            for key, raw in zip(wanted, replies, strict=True):
                try:
                    if isinstance(raw, Exception):
                        raise ValueError(raw)
                    found[key] = self._parse(key, raw, now)
                except ValueError:
                    found[key] = EndpointStatus(key)
            return found

        return self._call(None, work, lambda: self.fallback.statuses(wanted))

    def status(self, key: str) -> EndpointStatus:
        """The endpoint's current status."""
        return self.statuses([key])[key]

    def is_slow(self, key: str) -> bool:
        """Whether the endpoint is marked slow now."""
        return self.status(key).slow_until is not None

    def reset(self, key: str) -> None:
        """Forget the endpoint."""
        k = self._key(key)

        def work() -> None:
            self.client.delete(k, k + ":f")

        self._call(None, work, lambda: self.fallback.reset(key))

    def record_streak(self, subscriber: str, *, ok: bool, now: float | None = None) -> int:
        """Count an attempt in the subscriber's failure streak, shared by every process."""
        now = time.time() if now is None else now
        key = f"{self.prefix}s:{subscriber}"
        if ok and time.monotonic() >= self._down_until:
            with self._lock:  # the healthy path: no round trip of its own
                self._queued_resets.add(key)
            return 0

        def work() -> int:
            return int(
                self._eval(_STREAK, [key], [repr(now), "1" if ok else "0", self._streak_ttl])
            )

        return self._call(
            None, work, lambda: self.fallback.record_streak(subscriber, ok=ok, now=now)
        )

    def streak_since(self, subscriber: str) -> float | None:
        """When the subscriber's failure streak began."""

        def work() -> float | None:
            self.flush()
            try:
                return _float(self.client.hget(f"{self.prefix}s:{subscriber}", "since"))
            except (ValueError, redis.ResponseError):
                return None

        return self._call(None, work, lambda: self.fallback.streak_since(subscriber))

    def reset_streak(self, subscriber: str) -> None:
        """Forget the subscriber's failure streak."""

        def work() -> None:
            self.client.delete(f"{self.prefix}s:{subscriber}")

        self._call(None, work, lambda: self.fallback.reset_streak(subscriber))

    def close(self) -> None:
        """Send what is pending, then close the connection pool."""
        with contextlib.suppress(redis.RedisError, OSError):
            self.flush()  # when unreachable the leases expire; a streak reset is lost
        self.client.close()
