"""The Redis transport (``redis://``, ``rediss://``): Huey's ``RedisStorage`` with reliable fetch.

Every move is one atomic Lua script or MULTI. Keys live under Huey's queue key
(``huey.redis.<name>:``), the schedule is Huey's (``huey.schedule.<name>``, ids by due ms),
results, counters and locks are Huey's own (``huey.results.<name>``, ``huey.counters.<name>``).
Keys under the prefix: ``queue:<q>`` (sorted set of ids by priority, then age),
``payloads`` (hash id → JSON Huey message),
``inflight:<worker>`` (hash id → queue), ``redeliveries``, ``heartbeats``, ``workers``,
``paused``, ``lease:<role>`` and ``wake:<q>`` (a list idle workers block on: only wake-up
tokens are popped while blocking, never jobs, so a process that dies there loses nothing).
"""
from __future__ import annotations

import json
import time

from huey.storage import RedisStorage
from redis import ConnectionPool

from tasks.transport.base import Fetched, Outgoing, now_ms, queue_score
from tasks.transport.storage import HueyQueueAPI

# Store payloads and place ids on their queues (with wake-up tokens) or the schedule: one atomic command.
# KEYS: payloads, schedule ; ARGV: prefix, then per message: id, queue, score (queue) or due ms (schedule),
# 'q' or 's', payload
PUSH_LUA = """
local woken = {}
for i = 2, #ARGV, 5 do
  local id, queue, score, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('HSET', KEYS[1], id, ARGV[i + 4])
  if kind == 's' then
    redis.call('ZADD', KEYS[2], score, id)
  else
    redis.call('ZADD', ARGV[1] .. 'queue:' .. queue, score, id)
    woken[queue] = (woken[queue] or 0) + 1
  end
end
for queue, count in pairs(woken) do
  local wake = ARGV[1] .. 'wake:' .. queue
  for _ = 1, math.min(count, 16) do redis.call('LPUSH', wake, '1') end
  redis.call('LTRIM', wake, 0, 63)
end
return 1
"""

# Take up to ARGV[3] jobs, first queue first, into a worker's in-flight hash.
# KEYS: payloads, inflight, redeliveries, queue keys..., wake keys... ; ARGV: now_ms, number of queues, limit
FETCH_LUA = """
local n, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local taken = {}
for i = 1, n do
  local qkey = KEYS[3 + i]
  local qname = string.sub(qkey, string.len(ARGV[4]) + 1)
  local tries = 0
  while #taken < 4 * limit and tries < 100 + limit do
    tries = tries + 1
    local popped = redis.call('ZPOPMIN', qkey)
    if not popped[1] then break end
    local id = popped[1]
    local payload = redis.call('HGET', KEYS[1], id)
    if payload then
      redis.call('HSET', KEYS[2], id, qname)
      local redelivered = redis.call('HGET', KEYS[3], id) or '0'
      taken[#taken + 1] = id
      taken[#taken + 1] = payload
      taken[#taken + 1] = i
      taken[#taken + 1] = redelivered
    end
  end
  if #taken >= 4 * limit then
    if redis.call('ZCARD', qkey) > 0 then  -- more waiting: wake another idle worker
      redis.call('LPUSH', KEYS[3 + n + i], '1')
      redis.call('LTRIM', KEYS[3 + n + i], 0, 63)
    end
    break
  end
end
return taken
"""

# Shared by the scripts below: put job ``id`` back on its queue (named in its payload, else ``fallback``).
# ``keep`` = '1' puts it at its old place (the time it was created), else at the back. A payload that isn't
# JSON still goes back (to ``fallback``): the worker that fetches it records it as Failed (poison).
REQUEUE_LUA = """
local function requeue(prefix, payloads, id, now, fallback, keep)
  local payload = redis.call('HGET', payloads, id)
  if not payload then return false end
  local ok, msg = pcall(cjson.decode, payload)
  if not ok or type(msg) ~= 'table' then msg = {} end
  local q = msg['queue']
  if type(q) ~= 'string' then q = fallback or 'default' end
  local at = tonumber(now)
  if keep == '1' and tonumber(msg['created']) then at = math.floor(tonumber(msg['created']) * 1000) end
  local score = -(tonumber(msg['priority']) or 0) * 10000000000000 + at
  redis.call('ZADD', prefix .. 'queue:' .. q, score, id)
  redis.call('LPUSH', prefix .. 'wake:' .. q, '1')
  redis.call('LTRIM', prefix .. 'wake:' .. q, 0, 63)
  return true
end
"""

# Move ids from an in-flight hash back to their queues (hand back / recovery).
# KEYS: payloads, inflight, redeliveries ; ARGV: prefix, now_ms, bump (0/1), ids... (none = all)
HAND_BACK_LUA = REQUEUE_LUA + """
local ids = {}
if #ARGV > 3 then
  for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('HKEYS', KEYS[2])
end
local moved = {}
for _, id in ipairs(ids) do
  local queue = redis.call('HGET', KEYS[2], id)
  local owned = queue and redis.call('HDEL', KEYS[2], id) == 1
  if owned and requeue(ARGV[1], KEYS[1], id, ARGV[2], queue, '1') then
    if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[3], id, 1) end
    moved[#moved + 1] = id
  end
end
return moved
"""

# Forget jobs this worker still holds in flight (a job recovered by another worker meanwhile is not ours).
# KEYS: payloads, inflight, redeliveries ; ARGV: ids...
ACK_LUA = """
local n = 0
for _, id in ipairs(ARGV) do
  if redis.call('HDEL', KEYS[2], id) == 1 then
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id)
    n = n + 1
  end
end
return n
"""

# Claim a dead worker (only one claimant wins).
# KEYS: heartbeats, worker info ; ARGV: worker id, stale-before ms
CLAIM_DEAD_LUA = """
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not beat or tonumber(beat) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# Move due ids from the schedule to their queues. KEYS: payloads, schedule ; ARGV: prefix, now_ms, limit
MOVE_DUE_LUA = REQUEUE_LUA + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local moved = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  if requeue(ARGV[1], KEYS[1], id, ARGV[2], nil, '0') then moved[#moved + 1] = id end
end
return moved
"""

# Take or renew a lease. KEYS: lease ; ARGV: owner, ttl ms
LEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Release a lease only if ``owner`` holds it. KEYS: lease ; ARGV: owner
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTransport(HueyQueueAPI, RedisStorage):
    """Huey's Redis storage with reliable fetch: atomic moves, idle workers block on a wake-up list."""

    def __init__(self, name: str = "jobs", url: str = "redis://127.0.0.1:6379/0", wait_timeout: float = 1.0):
        options = {"ssl_cert_reqs": None} if url.startswith("rediss://") else {}
        pool = ConnectionPool.from_url(url, health_check_interval=30, socket_timeout=wait_timeout + 10,
                                       **options)
        super().__init__(name, connection_pool=pool, read_timeout=wait_timeout)
        self.url, self.wait_timeout = url, wait_timeout
        self.prefix = f"{self.queue_key}:"
        self.payloads_key = self.prefix + "payloads"
        self.redeliveries_key = self.prefix + "redeliveries"
        self.heartbeats_key = self.prefix + "heartbeats"
        self.workers_key = self.prefix + "workers"
        self.paused_key = self.prefix + "paused"
        self._push = self.conn.register_script(PUSH_LUA)
        self._fetch = self.conn.register_script(FETCH_LUA)
        self._hand_back = self.conn.register_script(HAND_BACK_LUA)
        self._ack = self.conn.register_script(ACK_LUA)
        self._claim_dead = self.conn.register_script(CLAIM_DEAD_LUA)
        self._move_due = self.conn.register_script(MOVE_DUE_LUA)
        self._lease = self.conn.register_script(LEASE_LUA)
        self._release = self.conn.register_script(RELEASE_LUA)

    def queue_key_for(self, queue: str) -> str:
        """Redis key of ``queue``'s sorted set."""
        return f"{self.prefix}queue:{queue}"

    def wake_key(self, queue: str) -> str:
        """Redis list idle workers block on for ``queue``."""
        return f"{self.prefix}wake:{queue}"

    def inflight_key(self, worker_id: str) -> str:
        """Redis hash of ``worker_id``'s in-flight job ids."""
        return f"{self.prefix}inflight:{worker_id}"

    # -- producing ---------------------------------------------------------
    def push(self, messages: list[Outgoing]) -> None:
        """Store payloads and place ids on queues or the schedule: one atomic script, one round trip."""
        if not messages:
            return
        at = now_ms()
        args: list = [self.prefix]
        for m in messages:
            if m.eta is not None and m.eta * 1000 > at:
                args += [m.job_id, m.queue, int(m.eta * 1000), "s", m.payload]
            else:
                args += [m.job_id, m.queue, queue_score(m.priority, at), "q", m.payload]
        self._push(keys=[self.payloads_key, self.schedule_key], args=args)

    # -- consuming ---------------------------------------------------------
    def fetch(self, worker_id: str, queues: list[str], limit: int = 1, wait: float = 0.0) -> list[Fetched]:
        """Move up to ``limit`` jobs into ``worker_id``'s in-flight set; block up to ``wait`` s when none."""
        if not queues:
            if wait:
                time.sleep(wait)
            return []
        fetched = self._try_fetch(worker_id, queues, limit)
        if not fetched and wait:
            if self.conn.blpop([self.wake_key(q) for q in queues], timeout=max(wait, 0.01)):
                fetched = self._try_fetch(worker_id, queues, limit)
        return fetched

    def _try_fetch(self, worker_id: str, queues: list[str], limit: int) -> list[Fetched]:
        keys = [self.payloads_key, self.inflight_key(worker_id), self.redeliveries_key]
        keys += [self.queue_key_for(q) for q in queues] + [self.wake_key(q) for q in queues]
        flat = self._fetch(keys=keys, args=[now_ms(), len(queues), max(1, limit), self.prefix + "queue:"])
        return [Fetched(flat[i].decode(), flat[i + 1], queues[int(flat[i + 2]) - 1], int(flat[i + 3]))
                for i in range(0, len(flat), 4)]

    def ack(self, worker_id: str, job_ids: list[str]) -> None:
        """Forget finished jobs this worker still holds: in-flight entry, payload, redelivery count."""
        if job_ids:
            keys = [self.payloads_key, self.inflight_key(worker_id), self.redeliveries_key]
            self._ack(keys=keys, args=job_ids)

    def reschedule(self, worker_id: str, messages: list[Outgoing]) -> None:
        """Replace in-flight jobs by their next attempt (queue or schedule) atomically."""
        if not messages:
            return
        ids = [m.job_id for m in messages]
        pipe = self.conn.pipeline(transaction=True)
        pipe.hdel(self.inflight_key(worker_id), *ids)
        pipe.hdel(self.redeliveries_key, *ids)
        pipe.execute()
        self.push(messages)

    def hand_back(self, worker_id: str, job_ids: list[str] | None = None, lost: bool = False) -> list[str]:
        """Return in-flight jobs (all, or ``job_ids``) to their queues; ``lost`` counts a redelivery."""
        moved = self._hand_back(
            keys=[self.payloads_key, self.inflight_key(worker_id), self.redeliveries_key],
            args=[self.prefix, now_ms(), "1" if lost else "0", *(job_ids or [])],
        )
        return [m.decode() for m in moved]

    def inflight(self, worker_id: str) -> list[str]:
        """Ids ``worker_id`` holds in flight."""
        return [k.decode() for k in self.conn.hkeys(self.inflight_key(worker_id))]

    def move_due(self, limit: int = 1000, at_ms: int | None = None) -> list[str]:
        """Atomically move jobs due by ``at_ms`` (default now) to their queues; returns their ids."""
        moved = self._move_due(keys=[self.payloads_key, self.schedule_key],
                               args=[self.prefix, at_ms or now_ms(), limit])
        return [m.decode() for m in moved]

    def queued_ids(self, limit: int | None = None) -> list[str]:
        """Ids waiting on queues, queue by queue, each in fetch order."""
        ids: list[str] = []
        for queue in self.queue_names():
            ids += [i.decode() for i in self.conn.zrange(self.queue_key_for(queue), 0, -1)]
        return ids[:limit] if limit else ids

    def scheduled_ids(self, limit: int | None = None) -> list[str]:
        """Ids waiting for their due time, soonest first."""
        return [i.decode() for i in self.conn.zrange(self.schedule_key, 0, (limit or 0) - 1)]

    def payloads(self, job_ids: list[str]) -> list[bytes]:
        """The serialized messages of ``job_ids`` that are still held."""
        return [p for p in (self.conn.hmget(self.payloads_key, job_ids) if job_ids else []) if p is not None]

    # -- management --------------------------------------------------------
    def remove(self, job_ids: list[str]) -> None:
        """Take jobs out of the transport (queue, schedule, payload) — used by delete."""
        if not job_ids:
            return
        pipe = self.conn.pipeline(transaction=True)
        for queue in self.queue_names():
            pipe.zrem(self.queue_key_for(queue), *job_ids)
        pipe.zrem(self.schedule_key, *job_ids)
        pipe.hdel(self.payloads_key, *job_ids)
        pipe.execute()

    def holds(self, job_ids: list[str]) -> set[str]:
        """Which of ``job_ids`` the transport still carries (payload present)."""
        if not job_ids:
            return set()
        pipe = self.conn.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hexists(self.payloads_key, job_id)
        return {job_id for job_id, present in zip(job_ids, pipe.execute()) if present}

    def queue_names(self) -> list[str]:
        """Names of queues that currently exist in Redis."""
        prefix = self.prefix + "queue:"
        return sorted(k.decode()[len(prefix):] for k in self.conn.scan_iter(prefix + "*", count=500))

    def queue_lengths(self) -> dict[str, int]:
        """Jobs waiting per queue."""
        names = self.queue_names()
        pipe = self.conn.pipeline(transaction=False)
        for name in names:
            pipe.zcard(self.queue_key_for(name))
        return dict(zip(names, pipe.execute()))

    def pause(self, queue: str) -> None:
        """Stop workers fetching from ``queue`` (jobs stay queued)."""
        self.conn.sadd(self.paused_key, queue)

    def resume(self, queue: str) -> None:
        """Let workers fetch from ``queue`` again."""
        self.conn.srem(self.paused_key, queue)
        self.conn.lpush(self.wake_key(queue), "1")

    def paused(self) -> set[str]:
        """Names of paused queues."""
        return {q.decode() for q in self.conn.smembers(self.paused_key)}

    def queue_stats(self) -> dict[str, tuple[int, float | None]]:
        """Per queue: jobs waiting and when the job at its head was queued (epoch s)."""
        names = self.queue_names()
        pipe = self.conn.pipeline(transaction=False)
        for name in names:
            pipe.zcard(self.queue_key_for(name))
            pipe.zrange(self.queue_key_for(name), 0, 0)
        replies = pipe.execute()
        stats = {}
        for index, name in enumerate(names):
            length, head = replies[2 * index], replies[2 * index + 1]
            created = None
            if head:
                raw = self.conn.hget(self.payloads_key, head[0])
                try:
                    created = json.loads(raw).get("created") if raw else None
                except (ValueError, AttributeError):
                    created = None  # a poison message at the head: its age is unknown
            stats[name] = (length, created)
        return stats

    def ping(self) -> str | None:
        """None when Redis answers, else the error."""
        try:
            self.conn.ping()
            return None
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}"

    # -- workers -------------------------------------------------------------
    def beat(self, worker_id: str, info: dict) -> None:
        """Record that ``worker_id`` is alive, with its description."""
        pipe = self.conn.pipeline(transaction=True)
        pipe.zadd(self.heartbeats_key, {worker_id: now_ms()})
        pipe.hset(self.workers_key, worker_id, json.dumps(info))
        pipe.execute()

    def workers(self) -> list[dict]:
        """Every registered worker with its last heartbeat (epoch seconds)."""
        beats = dict(self.conn.zrange(self.heartbeats_key, 0, -1, withscores=True))
        result = []
        for worker_id, raw in self.conn.hgetall(self.workers_key).items():
            info = json.loads(raw)
            info.update(id=worker_id.decode(), last_beat=beats.get(worker_id, 0) / 1000)
            result.append(info)
        return result

    def claim_dead(self, stale_after: float) -> list[str]:
        """Worker ids whose heartbeat is older than ``stale_after`` s, each claimed by this caller only."""
        cutoff = now_ms() - int(stale_after * 1000)
        stale = [w.decode() for w in self.conn.zrangebyscore(self.heartbeats_key, "-inf", cutoff)]
        return [w for w in stale
                if self._claim_dead(keys=[self.heartbeats_key, self.workers_key], args=[w, cutoff])]

    def orphaned_inflight(self, live: set[str]) -> list[str]:
        """Worker ids that hold in-flight jobs but have no heartbeat at all (e.g. after a Redis restart)."""
        prefix = self.prefix + "inflight:"
        owners = {k.decode()[len(prefix):] for k in self.conn.scan_iter(prefix + "*", count=500)}
        return sorted(owners - live - {w.decode() for w in self.conn.zrange(self.heartbeats_key, 0, -1)})

    def lead(self, role: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease on ``role`` for ``ttl`` seconds; True when ``owner`` holds it."""
        return bool(self._lease(keys=[f"{self.prefix}lease:{role}"], args=[owner, int(ttl * 1000)]))

    def release(self, role: str, owner: str) -> None:
        """Give up the lease on ``role`` if ``owner`` holds it."""
        self._release(keys=[f"{self.prefix}lease:{role}"], args=[owner])

    def holder(self, role: str) -> str | None:
        """Who holds the lease on ``role`` now."""
        owner = self.conn.get(f"{self.prefix}lease:{role}")
        return owner.decode() if owner else None

    def retire(self, worker_id: str) -> None:
        """Remove a worker that stopped cleanly."""
        pipe = self.conn.pipeline(transaction=True)
        pipe.zrem(self.heartbeats_key, worker_id)
        pipe.hdel(self.workers_key, worker_id)
        pipe.execute()

    def flush_all(self) -> None:
        """Delete every key of this transport and of Huey's storage (tests, purges)."""
        keys = list(self.conn.scan_iter(self.prefix + "*", count=1000))
        keys += [self.schedule_key, self.result_key, self.counter_key]
        self.conn.delete(*keys)

    def close(self) -> None:
        """Drop pooled connections (redis-py also resets its pool in a forked child by itself)."""
        self.conn.connection_pool.disconnect()
