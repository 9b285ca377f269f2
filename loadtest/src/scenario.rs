//! The scenarios (`calls`, `room`, `fanout`, `churn`) as lists of peers,
//! and the run itself: ramp peers up at `--ramp` joins per second, wait for
//! them to settle, measure for `--duration` at full load (reading the server
//! at the start and end of that window), then stop the media, freeze the
//! measurements and let everyone leave. Ctrl-C cuts any phase short.
//! `churn --cycles N` instead runs until N churners have come and gone,
//! reading the server every 500 cycles and, at the end, until it is clean
//! (see [`crate::soak`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{Cli, Scenario};
use crate::peer::{run_peer, PeerSpec, RunContext};
use crate::progress;
use crate::server_metrics::{read_proc, ServerSnapshot, Source};
use crate::soak::CHECKPOINT_CYCLES;
use crate::stats::{Collector, PeerRecord};

/// How long peers get to connect and see a first frame after the last join.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Packets in flight when publishers stop get this long to arrive.
const DRAIN: Duration = Duration::from_millis(500);
/// Peers get this long to leave.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The peers a scenario starts with, plus churners for `churn`.
pub fn plan(cli: &Cli) -> Vec<PeerSpec> {
    let spec = |room: String, name: String, publish: bool, expects_media: bool| PeerSpec {
        room,
        name,
        publish,
        expects_media,
        lifetime: None,
        slow: false,
    };
    match cli.scenario {
        Scenario::Calls => (0..cli.calls)
            .flat_map(|i| {
                ["a", "b"].map(|side| spec(format!("call-{i}"), side.to_owned(), true, true))
            })
            .collect(),
        Scenario::Room => (0..cli.rooms)
            .flat_map(|r| {
                (0..cli.peers).map(move |m| {
                    spec(
                        format!("room-{r}"),
                        format!("peer-{m}"),
                        true,
                        cli.peers > 1,
                    )
                })
            })
            .collect(),
        Scenario::Fanout => std::iter::once(spec("fanout".into(), "publisher".into(), true, false))
            .chain((0..cli.subscribers).map(|i| {
                let slow = i < cli.slow_subscribers;
                let name = if slow {
                    format!("slow-{i}")
                } else {
                    format!("sub-{i}")
                };
                PeerSpec {
                    slow,
                    ..spec("fanout".into(), name, false, true)
                }
            }))
            .collect(),
        Scenario::Churn => (0..cli.churn_rooms)
            .map(|r| spec(churn_room(cli, u64::from(r)), "anchor".into(), true, false))
            .collect(),
    }
}

/// The room of churner (or anchor) `n`: `churn`, or with `--churn-rooms R`
/// above 1, `churn-{n mod R}`.
fn churn_room(cli: &Cli, n: u64) -> String {
    if cli.churn_rooms > 1 {
        format!("churn-{}", n % u64::from(cli.churn_rooms))
    } else {
        "churn".to_owned()
    }
}

/// The server's readings around the run.
#[derive(Debug, Clone, Default)]
pub struct ServerReadings {
    /// Before any peer joined.
    pub before: Option<ServerSnapshot>,
    /// When full load began.
    pub steady_start: Option<ServerSnapshot>,
    /// When full load ended (peers still connected).
    pub steady_end: Option<ServerSnapshot>,
    /// After every peer left.
    pub after: Option<ServerSnapshot>,
    /// `churn --cycles`: after every 500 finished cycles, with that count.
    pub checkpoints: Vec<(u64, ServerSnapshot)>,
    /// The first error reading the server, if any.
    pub error: Option<String>,
    /// This process (the load generator) at the start and end of full load.
    pub load_generator: (Option<ServerSnapshot>, Option<ServerSnapshot>),
}

/// What a run produced.
pub struct RunOutcome {
    /// All measurements.
    pub collector: Arc<Collector>,
    /// The server's readings.
    pub server: ServerReadings,
    /// Ctrl-C cut it short.
    pub interrupted: bool,
    /// When the full-load window began, since the start of the run.
    pub steady_start: Duration,
    /// Length of the full-load window actually measured.
    pub steady: Duration,
    /// Whole run, first join to last leave.
    pub elapsed: Duration,
    /// Peers in the plan (churners not included).
    pub planned_peers: usize,
    /// `churn`: churners that came and went.
    pub cycles_done: u64,
}

/// Sleeps for `d`; `true` if interrupted instead.
async fn pause(d: Duration, interrupt: &mut watch::Receiver<bool>) -> bool {
    if *interrupt.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = interrupt.wait_for(|i| *i) => true,
    }
}

fn settled(peer: &PeerRecord) -> bool {
    peer.failure.is_some() || peer.cut_off || peer.succeeded()
}

/// Runs the whole scenario.
pub async fn run(
    cli: &Cli,
    ctx: RunContext,
    server: Source,
    stop_media: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    mut interrupt: watch::Receiver<bool>,
) -> RunOutcome {
    let ctx = Arc::new(ctx);
    let collector = Arc::clone(&ctx.collector);
    let specs = plan(cli);
    let planned_peers = specs.len();
    let (phase_tx, phase_rx) = watch::channel("ramp");
    let (done_tx, done_rx) = watch::channel(false);
    let display = progress::spawn(
        Arc::clone(&collector),
        planned_peers,
        cli.no_progress,
        phase_rx,
        done_rx,
    );
    let mut readings = ServerReadings::default();
    let read = |r: Result<ServerSnapshot, String>, readings: &mut ServerReadings| match r {
        Ok(s) => Some(s),
        Err(e) => {
            readings.error.get_or_insert(e);
            None
        }
    };
    let t = |c: &Collector| c.start.elapsed().as_secs_f64();
    readings.before = read(server.read(t(&collector)).await, &mut readings);

    let mut interrupted = false;
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let gap = Duration::from_secs_f64(1.0 / cli.ramp);
    for spec in specs {
        tasks.push(tokio::spawn(run_peer(Arc::clone(&ctx), spec)));
        if pause(gap, &mut interrupt).await {
            interrupted = true;
            break;
        }
    }

    // Settle: every peer connected (with a first frame) or failed.
    let _ = phase_tx.send("settling");
    let settle_deadline = Instant::now() + SETTLE_TIMEOUT;
    while !interrupted && Instant::now() < settle_deadline {
        let peers = collector.peers();
        if peers.len() >= planned_peers && peers.iter().all(settled) {
            break;
        }
        interrupted = pause(Duration::from_millis(200), &mut interrupt).await;
    }

    let _ = phase_tx.send("steady");
    readings.steady_start = read(server.read(t(&collector)).await, &mut readings);
    let me = std::process::id();
    readings.load_generator.0 = read_proc(me, t(&collector)).ok();
    let steady_from = Instant::now();
    let steady_start = collector.start.elapsed();
    let mut cycles_done = 0;
    if !interrupted {
        interrupted = match cli.scenario {
            Scenario::Churn => {
                let mut churning = Churning {
                    tasks: &mut tasks,
                    server: &server,
                    readings: &mut readings,
                    cycles_done: 0,
                };
                let interrupted = churn(cli, &ctx, &mut churning, &mut interrupt).await;
                cycles_done = churning.cycles_done;
                interrupted
            }
            _ => pause(cli.duration, &mut interrupt).await,
        };
    }
    let steady = steady_from.elapsed();
    readings.steady_end = read(server.read(t(&collector)).await, &mut readings);
    readings.load_generator.1 = read_proc(me, t(&collector)).ok();

    let _ = phase_tx.send("stopping");
    let _ = stop_media.send(true);
    tokio::time::sleep(DRAIN).await;
    collector.freeze();
    let _ = stop.send(true);
    let leave = async {
        for task in &mut tasks {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(LEAVE_TIMEOUT, leave).await.is_err() {
        for task in &tasks {
            task.abort();
        }
    }
    // Give the server a moment to tear the sessions down before reading it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = if cli.cycles.is_some() {
        crate::soak::read_end(&server, readings.before.as_ref(), || t(&collector)).await
    } else {
        server.read(t(&collector)).await
    };
    readings.after = read(end, &mut readings);
    let _ = done_tx.send(true);
    let _ = display.await;
    RunOutcome {
        elapsed: collector.start.elapsed(),
        collector,
        server: readings,
        interrupted,
        steady_start,
        steady,
        planned_peers,
        cycles_done,
    }
}

/// What the churn loop updates.
struct Churning<'a> {
    /// Every peer task of the run; finished churners go here.
    tasks: &'a mut Vec<JoinHandle<()>>,
    /// The server, read at checkpoints.
    server: &'a Source,
    /// Where checkpoints (and a read error) go.
    readings: &'a mut ServerReadings,
    /// Churners that finished.
    cycles_done: u64,
}

/// The `churn` load during the measured window: join at `--ramp` per
/// second while fewer than `--peers` churners are present; each leaves
/// after a `--lifetime`. Without `--cycles` it lasts `--duration`; with it,
/// until that many churners have been started and all have left, the
/// server being read every [`CHECKPOINT_CYCLES`] finished cycles. Returns
/// `true` if interrupted.
async fn churn(
    cli: &Cli,
    ctx: &Arc<RunContext>,
    run: &mut Churning<'_>,
    interrupt: &mut watch::Receiver<bool>,
) -> bool {
    let end = Instant::now() + cli.duration;
    let gap = Duration::from_secs_f64(1.0 / cli.ramp);
    let mut present: Vec<JoinHandle<()>> = Vec::new();
    let mut n = 0u64;
    let mut next_checkpoint = CHECKPOINT_CYCLES;
    loop {
        let (done, still): (Vec<_>, Vec<_>) = present.drain(..).partition(|t| t.is_finished());
        present = still;
        run.cycles_done += done.len() as u64;
        run.tasks.extend(done);
        while cli.cycles.is_some() && run.cycles_done >= next_checkpoint {
            let t = ctx.collector.start.elapsed().as_secs_f64();
            match run.server.read(t).await {
                Ok(s) => run.readings.checkpoints.push((next_checkpoint, s)),
                Err(e) => {
                    run.readings.error.get_or_insert(e);
                }
            }
            next_checkpoint += CHECKPOINT_CYCLES;
        }
        let finished = match cli.cycles {
            Some(cycles) => n >= cycles && present.is_empty(),
            None => Instant::now() >= end,
        };
        if finished {
            break;
        }
        if present.len() < cli.peers as usize && cli.cycles.is_none_or(|c| n < c) {
            let spec = PeerSpec {
                room: churn_room(cli, n),
                name: format!("churner-{n}"),
                publish: true,
                expects_media: true,
                lifetime: Some(cli.lifetime.pick()),
                slow: false,
            };
            n += 1;
            let task = tokio::spawn(run_peer(Arc::clone(ctx), spec));
            present.push(task);
        }
        let wait = match cli.cycles {
            Some(_) => gap,
            None => gap.min(end.saturating_duration_since(Instant::now())),
        };
        if pause(wait, interrupt).await {
            run.tasks.append(&mut present);
            return true;
        }
    }
    run.tasks.append(&mut present);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sfu-loadtest").chain(args.iter().copied()))
            .expect("valid flags")
    }

    #[test]
    fn plans() {
        let room = plan(&cli(&[
            "--scenario",
            "room",
            "--rooms",
            "2",
            "--peers",
            "3",
        ]));
        assert_eq!(room.len(), 6);
        assert!(room.iter().all(|p| p.publish && p.expects_media));
        assert_eq!(room.iter().filter(|p| p.room == "room-1").count(), 3);
        let fanout = plan(&cli(&["--scenario", "fanout", "--subscribers", "4"]));
        assert_eq!(fanout.len(), 5);
        assert_eq!(fanout.iter().filter(|p| p.publish).count(), 1);
        assert!(fanout
            .iter()
            .filter(|p| !p.publish)
            .all(|p| p.expects_media));
        let calls = plan(&cli(&["--scenario", "calls", "--calls", "3"]));
        assert_eq!(calls.len(), 6);
        assert_eq!(calls.iter().filter(|p| p.room == "call-2").count(), 2);
        let churn = plan(&cli(&["--scenario", "churn"]));
        assert_eq!(churn.len(), 1, "the anchor; churners come during the run");
        assert_eq!(churn[0].room, "churn");
        let rooms = cli(&["--scenario", "churn", "--churn-rooms", "3"]);
        let anchors: Vec<String> = plan(&rooms).into_iter().map(|p| p.room).collect();
        assert_eq!(anchors, ["churn-0", "churn-1", "churn-2"]);
        assert_eq!(churn_room(&rooms, 7), "churn-1");
        let alone = plan(&cli(&[
            "--scenario",
            "room",
            "--rooms",
            "1",
            "--peers",
            "1",
        ]));
        assert!(!alone[0].expects_media, "nobody to receive from");
    }
}
