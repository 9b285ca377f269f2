//! Cluster mode against a real `redis-server` started by each test:
//! placement, redirects with routing tokens, takeover of a dead node's
//! room, drain hand-over, and Redis lost at start-up and at runtime.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use signaling::Server;
use tokio::time::{sleep, Instant};

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(port).await
    }

    async fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install -y redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            sleep(Duration::from_millis(50)).await;
        }
        Self { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs a command with redis-cli; returns its output.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn node(redis: &Redis, id: &str) -> Server {
    let url = redis.url();
    let id = id.to_owned();
    start_server_with(move |c| {
        c.redis_url = Some(url);
        c.node_id = Some(id);
        c.cluster_ttl_secs = 3;
    })
    .await
}

/// Sends `join` (with a routing token, when given) and returns the reply.
async fn send_join(ws: &mut Ws, room: &str, identity: &str, routing: Option<&str>) -> Value {
    let mut msg = json!({"type": "join", "room": room, "name": identity,
                         "token": token(room, identity)});
    if let Some(routing) = routing {
        msg["routingToken"] = routing.into();
    }
    send_json(ws, &msg).await;
    loop {
        let reply = recv_json(ws).await;
        // `offer`s and participant news of an existing room may come first.
        if ["joined", "redirect", "error"].contains(&reply["type"].as_str().unwrap_or("")) {
            return reply;
        }
    }
}

/// Joins `room` through `entry`, following redirects; returns the socket,
/// the `joined` message and the redirects seen.
async fn join_via(entry: SocketAddr, room: &str, identity: &str) -> (Ws, Value, Vec<Value>) {
    let mut ws = connect(entry).await;
    let mut routing: Option<String> = None;
    let mut redirects = Vec::new();
    for _ in 0..4 {
        let reply = send_join(&mut ws, room, identity, routing.as_deref()).await;
        match reply["type"].as_str() {
            Some("joined") => return (ws, reply, redirects),
            Some("redirect") => {
                let url = reply["url"].as_str().expect("redirect has a url");
                assert!(url.starts_with("ws://127.0.0.1:"), "{reply}");
                routing = Some(reply["routingToken"].as_str().expect("token").to_owned());
                let _ = ws.close(None).await;
                ws = tokio_tungstenite::connect_async(url)
                    .await
                    .expect("redirect target")
                    .0;
                redirects.push(reply);
            }
            _ => panic!("join of {room} via {entry} failed: {reply}"),
        }
    }
    panic!("more than 3 redirects for {room}: {redirects:?}");
}

async fn cluster_view(node: &Server) -> Value {
    let response = http_request(
        node.http_addr,
        "GET",
        "/api/cluster",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
    )
    .await;
    assert_eq!(response.status, 200, "/api/cluster: {}", response.text());
    serde_json::from_str(&response.text()).expect("JSON")
}

fn home_of(view: &Value, room: &str) -> Option<String> {
    view["rooms"]
        .as_array()?
        .iter()
        .find(|r| r["room"] == room)
        .map(|r| r["node"].as_str().unwrap_or("").to_owned())
}

/// Waits until `check` holds for the cluster as `node` sees it.
async fn wait_view(node: &Server, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = cluster_view(node).await;
        if check(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "{what}: not within 10 s: {view}");
        sleep(Duration::from_millis(100)).await;
    }
}

fn peers_of(view: &Value, node: &str) -> u64 {
    view["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == node))
        .and_then(|n| n["peers"].as_u64())
        .unwrap_or(0)
}

#[tokio::test]
async fn joins_through_any_node_meet_in_one_room_and_new_rooms_go_to_the_least_loaded_node() {
    let redis = Redis::start().await;
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let n3 = node(&redis, "n3").await;
    let view = wait_view(&n1, "three nodes", |v| {
        v["nodes"].as_array().map(Vec::len) == Some(3)
    })
    .await;
    assert_eq!(view["node"], "n1");

    // A new room on an idle cluster stays on the node the client reached.
    let (_a, joined_a, redirects) = join_via(n1.http_addr, "r1", "alice").await;
    assert!(redirects.is_empty(), "{redirects:?}");
    let nodes = joined_a["nodes"]
        .as_array()
        .expect("joined lists the nodes");
    assert_eq!(nodes.len(), 3, "{joined_a}");
    assert_eq!(nodes[0], format!("ws://{}/ws", n1.http_addr));

    // Bob reaches node 2 and is sent to the room's home, node 1.
    let (_b, joined_b, redirects) = join_via(n2.http_addr, "r1", "bob").await;
    assert_eq!(redirects.len(), 1);
    assert_eq!(redirects[0]["reason"], "home");
    assert_eq!(redirects[0]["node"], "n1");
    assert_eq!(redirects[0]["url"], format!("ws://{}/ws", n1.http_addr));
    let others = joined_b["participants"].as_array().expect("participants");
    assert_eq!(others.len(), 1, "bob meets alice: {joined_b}");
    assert_eq!(
        home_of(&cluster_view(&n3).await, "r1").as_deref(),
        Some("n1")
    );
    let text = metrics(n2.http_addr).await;
    assert_eq!(
        metric(&text, r#"sfu_cluster_redirects_total{reason="home"}"#),
        Some(1.0)
    );

    // Once node 1's load is registered, a new room reached through node 1
    // goes to an idle node.
    wait_view(&n3, "node 1 carries two peers", |v| peers_of(v, "n1") == 2).await;
    wait_for_metric(
        n3.http_addr,
        r#"sfu_cluster_node_load{figure="peers",node="n1"}"#,
        2.0,
    )
    .await;
    let (_c, _, redirects) = join_via(n1.http_addr, "r2", "carol").await;
    assert_eq!(redirects.len(), 1, "{redirects:?}");
    assert_eq!(redirects[0]["reason"], "placement");
    let home = redirects[0]["node"].as_str().expect("node").to_owned();
    assert!(home == "n2" || home == "n3", "r2 placed on {home}");
    assert_eq!(home_of(&cluster_view(&n1).await, "r2"), Some(home));

    // A routing token for another node is not honoured: routed as usual.
    let mut ws = connect(n3.http_addr).await;
    let forged = n1.keys().api_key().to_owned();
    let reply = send_join(&mut ws, "r1", "dave", Some(&forged)).await;
    assert_eq!(reply["type"], "redirect", "{reply}");
    assert_eq!(reply["node"], "n1");

    for n in [n1, n2, n3] {
        stop_server(n).await;
    }
    // A clean shutdown unregisters the nodes and frees their rooms.
    assert_eq!(redis.cli(&["--scan", "--pattern", "sfu:*"]), "");
}

#[tokio::test]
async fn a_room_whose_home_died_is_taken_over_by_a_live_node() {
    let redis = Redis::start().await;
    let n2 = node(&redis, "n2").await;
    // A home that stopped beating: its registration is gone.
    redis.cli(&["SET", "sfu:room:orphan", "ghost", "PX", "60000"]);
    // A home still registered (its TTL not out yet) that no longer answers.
    let record = json!({"id": "dead", "url": "http://127.0.0.1:9", "media": [], "peers": 0,
                        "rooms": 1, "cpu": 0.0, "pps": 0.0, "draining": false, "started": 0});
    redis.cli(&["SET", "sfu:node:dead", &record.to_string(), "PX", "60000"]);
    redis.cli(&["SET", "sfu:room:stale", "dead", "PX", "60000"]);

    for room in ["orphan", "stale"] {
        let (_ws, joined, redirects) = join_via(n2.http_addr, room, "erin").await;
        assert!(redirects.is_empty(), "{room}: {redirects:?}");
        assert_eq!(joined["room"], room);
        assert_eq!(redis.cli(&["GET", &format!("sfu:room:{room}")]), "n2");
    }
    let text = metrics(n2.http_addr).await;
    assert_eq!(metric(&text, "sfu_cluster_takeovers_total"), Some(2.0));
    stop_server(n2).await;
}

#[tokio::test]
async fn a_draining_node_hands_its_rooms_over_and_sends_its_clients_there() {
    let redis = Redis::start().await;
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    wait_view(&n1, "two nodes", |v| {
        v["nodes"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    let (mut a, _, _) = join_via(n1.http_addr, "r1", "alice").await;
    let response = http_request(
        n1.http_addr,
        "POST",
        "/api/drain",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
    )
    .await;
    assert_eq!(response.status, 202, "{}", response.text());
    let redirect = loop {
        let msg = recv_json(&mut a).await;
        if msg["type"] == "redirect" {
            break msg;
        }
    };
    assert_eq!(redirect["reason"], "drain");
    assert_eq!(redirect["node"], "n2");
    assert_eq!(redis.cli(&["GET", "sfu:room:r1"]), "n2");
    // The client follows: it lands on node 2 with its routing token.
    let url = redirect["url"].as_str().expect("url");
    let (mut a2, _) = tokio_tungstenite::connect_async(url).await.expect("node 2");
    let joined = send_join(&mut a2, "r1", "alice", redirect["routingToken"].as_str()).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    // A newcomer reaching the draining node is sent on too.
    let (_b, joined_b, redirects) = join_via(n1.http_addr, "r1", "bob").await;
    assert_eq!(redirects.len(), 1);
    assert_eq!(redirects[0]["node"], "n2");
    assert_eq!(joined_b["participants"].as_array().map(Vec::len), Some(1));
    let view = cluster_view(&n2).await;
    let draining = view["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == "n1"))
        .map(|n| n["draining"].clone());
    assert_eq!(draining, Some(json!(true)), "{view}");
    stop_server(n1).await;
    stop_server(n2).await;
}

#[tokio::test]
async fn redis_unreachable_at_start_up_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut config = test_config();
    config.redis_url = Some(format!("redis://127.0.0.1:{port}/"));
    let err = match signaling::start(config).await {
        Ok(_) => panic!("started without Redis"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("cannot reach Redis at redis://127.0.0.1:"),
        "{err}"
    );

    // Cluster mode without a shared secret is refused too.
    let redis = Redis::start().await;
    let mut config = test_config();
    config.api_key = None;
    config.api_secret = None;
    config.redis_url = Some(redis.url());
    let err = match signaling::start(config).await {
        Ok(_) => panic!("started without a shared secret"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("--api-secret"), "{err}");
}

#[tokio::test]
async fn calls_go_on_without_redis_and_the_cluster_recovers_when_it_returns() {
    let mut redis = Redis::start().await;
    let port = redis.port;
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let (_a, _, _) = join_via(n1.http_addr, "r1", "alice").await;
    redis.stop();
    wait_for_metric(n1.http_addr, "sfu_cluster_redis_up", 0.0).await;

    // The room held on node 1 still takes joins there.
    let (_b, joined, redirects) = join_via(n1.http_addr, "r1", "bob").await;
    assert!(redirects.is_empty());
    assert_eq!(joined["participants"].as_array().map(Vec::len), Some(1));
    // A join node 2 cannot place gets a clear error.
    let mut c = connect(n2.http_addr).await;
    let reply = send_join(&mut c, "r1", "carol", None).await;
    assert_eq!(reply["code"], "cluster_unavailable", "{reply}");
    assert!(reply["message"]
        .as_str()
        .unwrap_or("")
        .contains("try again"));
    let text = metrics(n2.http_addr).await;
    assert_eq!(metric(&text, "sfu_cluster_unavailable_total"), Some(1.0));
    let response = http_request(
        n2.http_addr,
        "GET",
        "/api/cluster",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
    )
    .await;
    assert_eq!(response.status, 503, "{}", response.text());

    // Redis returns empty: the nodes register again and node 1 claims its
    // room back, so the join through node 2 now reaches it.
    let _redis = Redis::start_on(port).await;
    wait_for_metric(n2.http_addr, "sfu_cluster_redis_up", 1.0).await;
    wait_view(&n2, "r1 homed on n1 again", |v| {
        home_of(v, "r1").as_deref() == Some("n1")
    })
    .await;
    let (_c, joined, redirects) = join_via(n2.http_addr, "r1", "carol").await;
    assert_eq!(redirects.len(), 1);
    assert_eq!(joined["participants"].as_array().map(Vec::len), Some(2));
    stop_server(n1).await;
    stop_server(n2).await;
}

/// Reads messages until a `participantJoined` named `name`.
async fn wait_participant(ws: &mut Ws, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "no participantJoined for {name}");
        let msg = recv_json(ws).await;
        if msg["type"] == "participantJoined" && msg["name"] == name {
            return msg;
        }
    }
}

// The bridge's WebRTC connections run on this runtime too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_cascade_local_a_newcomer_stays_on_its_node_and_the_room_is_linked() {
    let redis = Redis::start().await;
    let url = redis.url();
    let start = |id: &'static str| {
        let url = url.clone();
        start_server_with(move |c| {
            c.redis_url = Some(url);
            c.node_id = Some(id.to_owned());
            c.cluster_ttl_secs = 3;
            c.cascade_local = true;
        })
    };
    let n1 = start("n1").await;
    let n2 = start("n2").await;
    let (mut alice, _, _) = join_via(n1.http_addr, "r1", "alice").await;
    let (mut bob, joined, redirects) = join_via(n2.http_addr, "r1", "bob").await;
    assert!(redirects.is_empty(), "bob stays on node 2: {redirects:?}");
    assert_eq!(joined["participants"].as_array().map(Vec::len), Some(0));
    // Each hears of the other through the link's ghosts.
    wait_participant(&mut bob, "alice").await;
    wait_participant(&mut alice, "bob").await;
    let text = metrics(n2.http_addr).await;
    assert_eq!(metric(&text, "sfu_cluster_bridges"), Some(1.0));
    // Node 1 stays the home; node 2 does not claim the room.
    assert_eq!(redis.cli(&["GET", "sfu:room:r1"]), "n1");
    // The link's Peers are marked as such to operators.
    let rooms = http_request(
        n1.http_addr,
        "GET",
        "/api/rooms",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
    )
    .await;
    let rooms: Value = serde_json::from_str(&rooms.text()).expect("JSON");
    let relays: Vec<&Value> = rooms["rooms"][0]["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .filter(|p| p["relay"] == true)
        .collect();
    assert_eq!(relays.len(), 2, "a sink and bob's ghost on node 1: {rooms}");
    // Bob leaves: the ghost on node 1 goes, and so does the link.
    send_json(&mut bob, &json!({"type": "leave"})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let msg = recv_json(&mut alice).await;
        if msg["type"] == "participantLeft" {
            break;
        }
        assert!(Instant::now() < deadline, "alice never saw bob leave");
    }
    wait_for_metric_within(
        n2.http_addr,
        "sfu_cluster_bridges",
        0.0,
        Duration::from_secs(20),
    )
    .await;
    stop_server(n1).await;
    stop_server(n2).await;
}

async fn wait_for_metric_within(addr: SocketAddr, series: &str, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if metric(&metrics(addr).await, series) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is not {want} within {within:?}"
        );
        sleep(Duration::from_millis(200)).await;
    }
}
