"""The fast lane: Huey storages that carry job messages between processes.

Both transports keep the same shape so the engine, the worker and recovery don't
care which one runs:

* a **queue** per name (priority first, then FIFO) holding job ids,
* a **payload** per job id (the JSON message) while the job is live,
* a **schedule** of delayed job ids by due time,
* an **in-flight** set per worker: a fetched job stays there until the worker
  has recorded its final state in the ledger and acknowledges it (reliable fetch),
* a **heartbeat** per worker, so live workers can recover the in-flight jobs of
  dead ones, and a **redelivery** count per job so a job that keeps killing its
  worker can't loop forever.

``RedisTransport`` (``REDIS_URL``) does every move atomically in Lua;
``SqliteTransport`` (the embedded default) does it in SQLite transactions.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from huey.storage import RedisStorage, SqliteStorage
from redis import ConnectionPool

PRIORITY_SPAN = 10 ** 13  # score = -priority * span + ms: priority first, then age


def now_ms() -> int:
    """Epoch milliseconds."""
    return int(time.time() * 1000)


def queue_score(priority: int, at_ms: int) -> int:
    """Sort key in a queue: higher priority first, then older first."""
    return -int(priority) * PRIORITY_SPAN + at_ms


@dataclass
class Fetched:
    """A message taken from a queue into a worker's in-flight set."""

    job_id: str
    payload: bytes
    queue: str
    redeliveries: int


@dataclass
class Outgoing:
    """A message to place: on its queue now, or on the schedule when ``eta`` is set."""

    job_id: str
    queue: str
    priority: int
    payload: bytes
    eta: float | None = None  # epoch seconds


# Take up to ARGV[3] jobs, first queue first, into a worker's in-flight hash.
# KEYS: payloads, inflight, redeliveries, queue keys..., wake keys... ; ARGV: now_ms, number of queues, limit
FETCH_LUA = """
local n, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local taken = {}
for i = 1, n do
  local qkey = KEYS[3 + i]
  local tries = 0
  while #taken < 4 * limit and tries < 100 + limit do
    tries = tries + 1
    local popped = redis.call('ZPOPMIN', qkey)
    if not popped[1] then break end
    local id = popped[1]
    local payload = redis.call('HGET', KEYS[1], id)
    if payload then
      redis.call('HSET', KEYS[2], id, ARGV[1])
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

# Shared by the scripts below: put job ``id`` on the queue named in its payload; false if no payload.
REQUEUE_LUA = """
local function requeue(prefix, payloads, id, now)
  local payload = redis.call('HGET', payloads, id)
  if not payload then return false end
  local msg = cjson.decode(payload)
  local q = msg['queue'] or 'default'
  local score = -(tonumber(msg['priority']) or 0) * 10000000000000 + tonumber(now)
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
  if redis.call('HDEL', KEYS[2], id) == 1 and requeue(ARGV[1], KEYS[1], id, ARGV[2]) then
    if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[3], id, 1) end
    moved[#moved + 1] = id
  end
end
return moved
"""

# Claim a dead worker (only one claimant wins), then hand its in-flight jobs back.
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
  if requeue(ARGV[1], KEYS[1], id, ARGV[2]) then moved[#moved + 1] = id end
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


class RedisTransport(RedisStorage):
    """Reliable-fetch Huey storage on Redis (``redis://`` or ``rediss://``)."""

    def __init__(self, name: str = "jobs", url: str = "redis://127.0.0.1:6379/0", wait_timeout: float = 1.0):
        options = {"ssl_cert_reqs": None} if url.startswith("rediss://") else {}
        pool = ConnectionPool.from_url(url, health_check_interval=30, **options)
        super().__init__(name=name, blocking=True, read_timeout=wait_timeout, connection_pool=pool)
        self.url = url
        self.prefix = f"jobs:{self.name}:"
        self.payloads_key = self.prefix + "payloads"
        self.schedule_key = self.prefix + "schedule"
        self.redeliveries_key = self.prefix + "redeliveries"
        self.heartbeats_key = self.prefix + "heartbeats"
        self.workers_key = self.prefix + "workers"
        self.paused_key = self.prefix + "paused"
        self._fetch = self.conn.register_script(FETCH_LUA)
        self._hand_back = self.conn.register_script(HAND_BACK_LUA)
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
        """Store payloads and place ids on queues or the schedule, atomically, in one round trip."""
        if not messages:
            return
        at = now_ms()
        scheduled: dict[str, int] = {}
        queued: dict[str, dict[str, int]] = {}
        for m in messages:
            if m.eta is not None and m.eta * 1000 > at:
                scheduled[m.job_id] = int(m.eta * 1000)
            else:
                queued.setdefault(m.queue, {})[m.job_id] = queue_score(m.priority, at)
        pipe = self.conn.pipeline(transaction=True)
        pipe.hset(self.payloads_key, mapping={m.job_id: m.payload for m in messages})
        if scheduled:
            pipe.zadd(self.schedule_key, scheduled)
        for queue, members in queued.items():
            pipe.zadd(self.queue_key_for(queue), members)
            pipe.lpush(self.wake_key(queue), *["1"] * min(len(members), 16))
            pipe.ltrim(self.wake_key(queue), 0, 63)
        pipe.execute()

    # -- consuming ---------------------------------------------------------
    def fetch(self, worker_id: str, queues: list[str], limit: int = 1, wait: bool = True) -> list[Fetched]:
        """Move up to ``limit`` jobs, first non-empty queue first, into ``worker_id``'s in-flight set.

        When every queue is empty and ``wait`` is true, block up to the read
        timeout for a wake-up, then try once more. Only wake tokens are popped
        while blocking, never jobs, so a process that dies here loses nothing.
        """
        if not queues:
            if wait:
                time.sleep(self.read_timeout)
            return []
        fetched = self._try_fetch(worker_id, queues, limit)
        if not fetched and wait:
            if self.conn.blpop([self.wake_key(q) for q in queues], timeout=self.read_timeout):
                fetched = self._try_fetch(worker_id, queues, limit)
        return fetched

    def _try_fetch(self, worker_id: str, queues: list[str], limit: int) -> list[Fetched]:
        keys = [self.payloads_key, self.inflight_key(worker_id), self.redeliveries_key]
        keys += [self.queue_key_for(q) for q in queues] + [self.wake_key(q) for q in queues]
        flat = self._fetch(keys=keys, args=[now_ms(), len(queues), max(1, limit)])
        return [Fetched(flat[i].decode(), flat[i + 1], queues[int(flat[i + 2]) - 1], int(flat[i + 3]))
                for i in range(0, len(flat), 4)]

    def ack(self, worker_id: str, job_ids: list[str]) -> None:
        """Forget finished jobs: drop them from in-flight, their payloads and counters."""
        if job_ids:
            pipe = self.conn.pipeline(transaction=True)
            pipe.hdel(self.inflight_key(worker_id), *job_ids)
            pipe.hdel(self.payloads_key, *job_ids)
            pipe.hdel(self.redeliveries_key, *job_ids)
            pipe.execute()

    def reschedule(self, worker_id: str, messages: list[Outgoing]) -> None:
        """Replace in-flight jobs by their next attempt (queue or schedule) atomically."""
        if not messages:
            return
        pipe = self.conn.pipeline(transaction=True)
        ids = [m.job_id for m in messages]
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

    def move_due(self, limit: int = 1000) -> list[str]:
        """Atomically move due scheduled jobs to their queues; returns their ids."""
        moved = self._move_due(keys=[self.payloads_key, self.schedule_key], args=[self.prefix, now_ms(), limit])
        return [m.decode() for m in moved]

    # -- management --------------------------------------------------------
    def remove(self, job_ids: list[str]) -> None:
        """Take jobs out of the transport (queue, schedule, payload) — used by delete."""
        if not job_ids:
            return
        queues = self.queue_names()
        pipe = self.conn.pipeline(transaction=True)
        for queue in queues:
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
                created = json.loads(raw).get("created") if raw else None
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
        infos = self.conn.hgetall(self.workers_key)
        result = []
        for worker_id, raw in infos.items():
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

    def retire(self, worker_id: str) -> None:
        """Remove a worker that stopped cleanly."""
        pipe = self.conn.pipeline(transaction=True)
        pipe.zrem(self.heartbeats_key, worker_id)
        pipe.hdel(self.workers_key, worker_id)
        pipe.execute()

    def flush_all(self) -> None:
        """Delete every key of this transport (tests, ``jobs purge``)."""
        keys = list(self.conn.scan_iter(self.prefix + "*", count=1000))
        if keys:
            self.conn.delete(*keys)


class SqliteTransport(SqliteStorage):
    """The embedded transport: Huey's SQLite storage plus one table of live messages.

    A row is queued (``worker`` and ``eta`` null), scheduled (``eta`` set) or in
    flight (``worker`` set). Every move is one SQLite transaction, so the same
    reliable-fetch guarantees hold as on Redis; workers poll instead of block.
    """

    ddl = SqliteStorage.ddl + [
        "create table if not exists job_messages ("
        " job_id text primary key, queue text not null, priority integer not null, seq integer not null,"
        " payload blob not null, eta integer, worker text, fetched integer,"
        " redeliveries integer not null default 0)",
        "create index if not exists job_messages_ready on job_messages (queue, priority desc, seq)"
        " where worker is null and eta is null",
        "create index if not exists job_messages_eta on job_messages (eta) where eta is not null",
        "create index if not exists job_messages_worker on job_messages (worker) where worker is not null",
        "create table if not exists job_workers (worker_id text primary key, info text not null,"
        " beat integer not null)",
        "create table if not exists job_leases (role text primary key, owner text not null,"
        " expires integer not null)",
        "create table if not exists job_paused_queues (queue text primary key)",
    ]

    def __init__(self, name: str = "jobs", filename: str = "jobs-transport.db", poll_interval: float = 0.05):
        super().__init__(name=name, filename=filename, timeout=30)
        self.blocking = False
        self.poll_interval = poll_interval

    # -- producing ---------------------------------------------------------
    def push(self, messages: list[Outgoing]) -> None:
        """Insert or replace messages, queued now or scheduled for their eta."""
        if not messages:
            return
        at = now_ms()
        rows = [(m.job_id, m.queue, m.priority, at, m.payload,
                 int(m.eta * 1000) if m.eta is not None and m.eta * 1000 > at else None) for m in messages]
        with self.db(commit=True) as cur:
            cur.executemany(
                "insert into job_messages (job_id, queue, priority, seq, payload, eta) values (?, ?, ?, ?, ?, ?)"
                " on conflict(job_id) do update set queue=excluded.queue, priority=excluded.priority,"
                " seq=excluded.seq,"
                " payload=excluded.payload, eta=excluded.eta, worker=null, fetched=null", rows)

    # -- consuming ---------------------------------------------------------
    def fetch(self, worker_id: str, queues: list[str], limit: int = 1, wait: bool = True) -> list[Fetched]:
        """Claim up to ``limit`` jobs, first non-empty queue first, for ``worker_id``; never blocks."""
        if not queues:
            return []
        order = " ".join(f"when ? then {i}" for i in range(len(queues)))
        marks = ",".join("?" * len(queues))
        with self.db(commit=True) as cur:
            cur.execute(
                "update job_messages set worker = ?, fetched = ? where job_id in ("
                f" select job_id from job_messages where worker is null and eta is null and queue in ({marks})"
                f" order by case queue {order} end, priority desc, seq limit ?)"
                " returning job_id, payload, queue, redeliveries, priority, seq",
                (worker_id, now_ms(), *queues, *queues, max(1, limit)))
            rows = cur.fetchall()
        rank = {q: i for i, q in enumerate(queues)}
        rows.sort(key=lambda r: (rank[r[2]], -r[4], r[5]))  # RETURNING has no order of its own
        return [Fetched(r[0], bytes(r[1]), r[2], r[3]) for r in rows]

    def ack(self, worker_id: str, job_ids: list[str]) -> None:
        """Forget finished jobs."""
        with self.db(commit=True) as cur:
            cur.executemany("delete from job_messages where job_id = ? and worker = ?",
                            [(job_id, worker_id) for job_id in job_ids])

    def reschedule(self, worker_id: str, messages: list[Outgoing]) -> None:
        """Replace in-flight jobs by their next attempt (redeliveries reset)."""
        self.push(messages)
        with self.db(commit=True) as cur:
            cur.executemany("update job_messages set redeliveries = 0 where job_id = ?",
                            [(m.job_id,) for m in messages])

    def hand_back(self, worker_id: str, job_ids: list[str] | None = None, lost: bool = False) -> list[str]:
        """Return in-flight jobs to their queues; ``lost`` counts a redelivery."""
        with self.db(commit=True) as cur:
            if job_ids is None:
                cur.execute("select job_id from job_messages where worker = ?", (worker_id,))
                job_ids = [r[0] for r in cur.fetchall()]
            cur.executemany(
                "update job_messages set worker = null, fetched = null, seq = ?,"
                " redeliveries = redeliveries + ? where job_id = ? and worker = ?",
                [(now_ms(), int(lost), j, worker_id) for j in job_ids])
        return list(job_ids)

    def inflight(self, worker_id: str) -> list[str]:
        """Ids ``worker_id`` holds in flight."""
        return [r[0] for r in self.sql("select job_id from job_messages where worker = ?", (worker_id,),
                                       results=True)]

    def move_due(self, limit: int = 1000) -> list[str]:
        """Move due scheduled jobs to their queues; returns their ids."""
        at = now_ms()
        with self.db(commit=True) as cur:
            cur.execute("update job_messages set eta = null, seq = ? where job_id in ("
                        " select job_id from job_messages where eta is not null and eta <= ? limit ?)"
                        " returning job_id", (at, at, limit))
            return [r[0] for r in cur.fetchall()]

    # -- management --------------------------------------------------------
    def remove(self, job_ids: list[str]) -> None:
        """Take jobs out of the transport."""
        with self.db(commit=True) as cur:
            cur.executemany("delete from job_messages where job_id = ?", [(j,) for j in job_ids])

    def holds(self, job_ids: list[str]) -> set[str]:
        """Which of ``job_ids`` the transport still carries."""
        found: set[str] = set()
        for start in range(0, len(job_ids), 500):
            part = job_ids[start:start + 500]
            found.update(r[0] for r in self.sql(
                f"select job_id from job_messages where job_id in ({','.join('?' * len(part))})", part,
                results=True))
        return found

    def queue_lengths(self) -> dict[str, int]:
        """Jobs waiting per queue."""
        return dict(self.sql("select queue, count(*) from job_messages where worker is null and eta is null"
                             " group by queue", results=True))

    def pause(self, queue: str) -> None:
        """Stop workers fetching from ``queue`` (jobs stay queued)."""
        self.sql("insert or ignore into job_paused_queues values (?)", (queue,), commit=True)

    def resume(self, queue: str) -> None:
        """Let workers fetch from ``queue`` again."""
        self.sql("delete from job_paused_queues where queue = ?", (queue,), commit=True)

    def paused(self) -> set[str]:
        """Names of paused queues."""
        return {r[0] for r in self.sql("select queue from job_paused_queues", results=True)}

    def queue_stats(self) -> dict[str, tuple[int, float | None]]:
        """Per queue: jobs waiting and when the oldest was queued (epoch s)."""
        rows = self.sql("select queue, count(*), min(seq) from job_messages where worker is null and eta is null"
                        " group by queue", results=True)
        return {queue: (count, oldest / 1000 if oldest else None) for queue, count, oldest in rows}

    def ping(self) -> str | None:
        """None when the SQLite file answers, else the error."""
        try:
            self.sql("select 1", results=True)
            return None
        except sqlite3.Error as exc:
            return f"{type(exc).__name__}: {exc}"

    # -- workers -------------------------------------------------------------
    def beat(self, worker_id: str, info: dict) -> None:
        """Record that ``worker_id`` is alive."""
        self.sql("insert into job_workers values (?, ?, ?) on conflict(worker_id) do update"
                 " set info = excluded.info, beat = excluded.beat", (worker_id, json.dumps(info), now_ms()),
                 commit=True)

    def workers(self) -> list[dict]:
        """Every registered worker with its last heartbeat (epoch seconds)."""
        rows = self.sql("select worker_id, info, beat from job_workers", results=True)
        return [{**json.loads(info), "id": worker_id, "last_beat": beat / 1000} for worker_id, info, beat in rows]

    def claim_dead(self, stale_after: float) -> list[str]:
        """Worker ids whose heartbeat is stale, removed from the registry by this caller."""
        cutoff = now_ms() - int(stale_after * 1000)
        with self.db(commit=True) as cur:
            cur.execute("delete from job_workers where beat < ? returning worker_id", (cutoff,))
            return [r[0] for r in cur.fetchall()]

    def orphaned_inflight(self, live: set[str]) -> list[str]:
        """Owners of in-flight jobs that have no heartbeat row."""
        rows = self.sql("select distinct worker from job_messages where worker is not null and worker not in"
                        " (select worker_id from job_workers)", results=True)
        return sorted({r[0] for r in rows} - live)

    def lead(self, role: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease on ``role`` for ``ttl`` seconds; True when ``owner`` holds it."""
        at = now_ms()
        with self.db(commit=True) as cur:
            cur.execute("insert into job_leases values (?, ?, ?) on conflict(role) do update"
                        " set owner = excluded.owner, expires = excluded.expires"
                        " where job_leases.owner = excluded.owner or job_leases.expires < ?",
                        (role, owner, at + int(ttl * 1000), at))
            cur.execute("select owner from job_leases where role = ?", (role,))
            return cur.fetchone()[0] == owner

    def release(self, role: str, owner: str) -> None:
        """Give up the lease on ``role`` if ``owner`` holds it."""
        self.sql("delete from job_leases where role = ? and owner = ?", (role, owner), commit=True)

    def retire(self, worker_id: str) -> None:
        """Remove a worker that stopped cleanly."""
        self.sql("delete from job_workers where worker_id = ?", (worker_id,), commit=True)

    def flush_all(self) -> None:
        """Delete every message and worker (tests, ``jobs purge``)."""
        with self.db(commit=True) as cur:
            cur.execute("delete from job_messages")
            cur.execute("delete from job_workers")
