//! What the cluster keeps in Redis, and the atomic operations on it.
//!
//! - `sfu:node:{id}`: a node's registration, a JSON [`NodeRecord`], set
//!   with a TTL that the node's heartbeat renews. A node that stops
//!   beating disappears when its TTL runs out.
//! - `sfu:room:{name}`: the room directory, the id of the room's home
//!   node, with the same TTL, renewed by the home node alone.
//!
//! Every change to a directory entry is one Lua script, so two nodes never
//! both believe they own a room: a claim succeeds only where the entry is
//! absent, already ours, or names a node that is gone (or that the caller
//! found unreachable); renewals, releases and hand-overs act only on
//! entries that name the caller. The scripts build the owner's node key
//! from its id, so the directory needs a single Redis (or a primary with
//! replicas), not Redis Cluster.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisResult, Script};
use serde::{Deserialize, Serialize};

/// The prefix of every key.
const PREFIX: &str = "sfu:";
/// Node registrations: `sfu:node:{id}`.
const NODE_PREFIX: &str = "sfu:node:";
/// Room directory entries: `sfu:room:{name}`.
const ROOM_PREFIX: &str = "sfu:room:";

/// A node's registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's id (`--node-id`).
    pub id: String,
    /// Its signaling base URL, as clients and other nodes reach it
    /// (`--node-url`), e.g. `http://10.0.0.5:8080`.
    pub url: String,
    /// The UDP addresses its media Workers advertise.
    pub media: Vec<String>,
    /// Connected Peers.
    pub peers: u64,
    /// Rooms with at least one Peer.
    pub rooms: u64,
    /// CPU the process used since the previous heartbeat, in cores.
    pub cpu: f64,
    /// RTP packets forwarded per second since the previous heartbeat.
    pub pps: f64,
    /// The node refuses new rooms and moves its rooms elsewhere.
    pub draining: bool,
    /// When the node started (Unix seconds).
    pub started: u64,
}

impl NodeRecord {
    /// The node's signaling WebSocket URL.
    pub fn ws_url(&self) -> String {
        Self::ws_url_of(&self.url)
    }

    /// The signaling WebSocket URL of a node at base URL `url`.
    pub fn ws_url_of(url: &str) -> String {
        let base = url.trim_end_matches('/');
        let base = match base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => format!("ws://{base}"),
        };
        format!("{base}/ws")
    }

    /// `host:port` of its signaling listener, for a reachability probe.
    pub fn authority(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("http", &self.url));
        let host = rest.split('/').next().unwrap_or(rest);
        let has_port = match host.rsplit_once(':') {
            // `[::1]` alone has colons but no port.
            Some((_, port)) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
            None => false,
        };
        if has_port {
            host.to_owned()
        } else if scheme == "https" {
            format!("{host}:443")
        } else {
            format!("{host}:80")
        }
    }
}

/// The Redis key of node `id`.
pub fn node_key(id: &str) -> String {
    format!("{NODE_PREFIX}{id}")
}

/// The Redis key of room `name`.
pub fn room_key(name: &str) -> String {
    format!("{ROOM_PREFIX}{name}")
}

/// Claims room KEYS[1] for ARGV[1] with TTL ARGV[2] ms, unless another
/// live node owns it: one whose key exists and that is not ARGV[3] (a node
/// the caller found unreachable). Returns the owner after the call.
const CLAIM: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] and owner ~= ARGV[3]
   and redis.call('EXISTS', ARGV[4] .. owner) == 1 then
  return owner
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
";

/// The owner of room KEYS[1] and whether its node key exists (1 or 0);
/// nil when the room has no entry.
const LOOKUP: &str = r"
local owner = redis.call('GET', KEYS[1])
if not owner then return nil end
return {owner, redis.call('EXISTS', ARGV[1] .. owner)}
";

/// Renews every room in KEYS owned by ARGV[1] (TTL ARGV[2] ms), and claims
/// the ones with no entry (after Redis lost them). Returns the rooms that
/// another node owns now.
const RENEW: &str = r"
local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, key)
  end
end
return lost
";

/// Deletes room KEYS[1] if ARGV[1] owns it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Hands room KEYS[1] from ARGV[1] to ARGV[2] (TTL ARGV[3] ms) if ARGV[1]
/// owns it. Returns 1 when it did.
const HAND_OVER: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// The owner of a room entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The node id.
    pub node: String,
    /// Whether that node is registered (its heartbeat has not lapsed).
    pub registered: bool,
}

/// The operations, on one multiplexed connection that reconnects by itself.
#[derive(Clone)]
pub struct Directory {
    redis: ConnectionManager,
    ttl_ms: u64,
}

impl Directory {
    /// Over `redis`, with entries that live `ttl_ms` unless renewed.
    pub fn new(redis: ConnectionManager, ttl_ms: u64) -> Self {
        Self { redis, ttl_ms }
    }

    /// Writes (or renews) a node's registration.
    pub async fn register(&self, record: &NodeRecord) -> RedisResult<()> {
        let json = serde_json::to_string(record).unwrap_or_default();
        let mut redis = self.redis.clone();
        redis
            .pset_ex::<_, _, ()>(node_key(&record.id), json, self.ttl_ms)
            .await
    }

    /// Removes a node's registration (a clean shutdown).
    pub async fn unregister(&self, id: &str) -> RedisResult<()> {
        let mut redis = self.redis.clone();
        redis.del::<_, ()>(node_key(id)).await
    }

    /// Every registered node, sorted by id. Unparsable records are skipped.
    pub async fn nodes(&self) -> RedisResult<Vec<NodeRecord>> {
        let keys = self.scan(&format!("{NODE_PREFIX}*")).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut redis = self.redis.clone();
        let values: Vec<Option<String>> = redis.mget(&keys).await?;
        let mut nodes: Vec<NodeRecord> = values
            .into_iter()
            .flatten()
            .filter_map(|json| serde_json::from_str(&json).ok())
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Every room entry: (room, home node id), sorted by room.
    pub async fn rooms(&self) -> RedisResult<Vec<(String, String)>> {
        let keys = self.scan(&format!("{ROOM_PREFIX}*")).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut redis = self.redis.clone();
        let owners: Vec<Option<String>> = redis.mget(&keys).await?;
        let mut rooms: Vec<(String, String)> = keys
            .iter()
            .zip(owners)
            .filter_map(|(key, owner)| Some((key.strip_prefix(ROOM_PREFIX)?.to_owned(), owner?)))
            .collect();
        rooms.sort();
        Ok(rooms)
    }

    async fn scan(&self, pattern: &str) -> RedisResult<Vec<String>> {
        let mut redis = self.redis.clone();
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut redis)
                .await?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Room `room`'s owner, if it has an entry.
    pub async fn lookup(&self, room: &str) -> RedisResult<Option<Owner>> {
        let mut redis = self.redis.clone();
        let found: Option<(String, i64)> = Script::new(LOOKUP)
            .key(room_key(room))
            .arg(NODE_PREFIX)
            .invoke_async(&mut redis)
            .await?;
        Ok(found.map(|(node, exists)| Owner {
            node,
            registered: exists == 1,
        }))
    }

    /// Claims `room` for `me` unless a live node other than `unreachable`
    /// owns it; returns the owner afterwards (`me` when the claim held).
    pub async fn claim(
        &self,
        room: &str,
        me: &str,
        unreachable: Option<&str>,
    ) -> RedisResult<String> {
        let mut redis = self.redis.clone();
        Script::new(CLAIM)
            .key(room_key(room))
            .arg(me)
            .arg(self.ttl_ms)
            .arg(unreachable.unwrap_or(""))
            .arg(NODE_PREFIX)
            .invoke_async(&mut redis)
            .await
    }

    /// Renews `me`'s entries for `rooms` (claiming lost ones back); returns
    /// the rooms another node owns now.
    pub async fn renew(&self, me: &str, rooms: &[String]) -> RedisResult<Vec<String>> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut redis = self.redis.clone();
        let renew = Script::new(RENEW);
        let mut script = renew.prepare_invoke();
        for room in rooms {
            script.key(room_key(room));
        }
        let lost: Vec<String> = script
            .arg(me)
            .arg(self.ttl_ms)
            .invoke_async(&mut redis)
            .await?;
        Ok(lost
            .into_iter()
            .filter_map(|key| key.strip_prefix(ROOM_PREFIX).map(str::to_owned))
            .collect())
    }

    /// Deletes `room`'s entry if `me` owns it.
    pub async fn release(&self, room: &str, me: &str) -> RedisResult<()> {
        let mut redis = self.redis.clone();
        Script::new(RELEASE)
            .key(room_key(room))
            .arg(me)
            .invoke_async::<i64>(&mut redis)
            .await
            .map(drop)
    }

    /// Hands `room` from `me` to `target`; `false` if `me` did not own it.
    pub async fn hand_over(&self, room: &str, me: &str, target: &str) -> RedisResult<bool> {
        let mut redis = self.redis.clone();
        let done: i64 = Script::new(HAND_OVER)
            .key(room_key(room))
            .arg(me)
            .arg(target)
            .arg(self.ttl_ms)
            .invoke_async(&mut redis)
            .await?;
        Ok(done == 1)
    }
}

/// Whether `key` is one of ours (for tests that inspect Redis).
pub fn is_cluster_key(key: &str) -> bool {
    key.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(url: &str) -> NodeRecord {
        NodeRecord {
            id: "n1".into(),
            url: url.into(),
            media: vec![],
            peers: 0,
            rooms: 0,
            cpu: 0.0,
            pps: 0.0,
            draining: false,
            started: 0,
        }
    }

    #[test]
    fn urls_of_a_node() {
        let n = record("http://127.0.0.1:8081/");
        assert_eq!(n.ws_url(), "ws://127.0.0.1:8081/ws");
        assert_eq!(n.authority(), "127.0.0.1:8081");
        let n = record("https://sfu-2.example.org");
        assert_eq!(n.ws_url(), "wss://sfu-2.example.org/ws");
        assert_eq!(n.authority(), "sfu-2.example.org:443");
        let n = record("http://[::1]:9000");
        assert_eq!(n.authority(), "[::1]:9000");
        assert_eq!(record("http://[::1]").authority(), "[::1]:80");
    }

    #[test]
    fn keys() {
        assert_eq!(node_key("a"), "sfu:node:a");
        assert_eq!(room_key("r"), "sfu:room:r");
        assert!(is_cluster_key("sfu:room:r"));
    }
}
