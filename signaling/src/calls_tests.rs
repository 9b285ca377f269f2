//! Unit tests of the call registry's state machine.

use super::*;

struct Party {
    id: String,
    rx: mpsc::Receiver<ServerMessage>,
}

fn register(reg: &CallRegistry, conn: u64, id: &str, name: &str) -> Party {
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let id = reg
        .register(conn, Some(id), Some(name.to_owned()), tx)
        .unwrap();
    Party { id, rx }
}

fn next(p: &mut Party) -> serde_json::Value {
    let msg = p.rx.try_recv().expect("an event is queued");
    serde_json::from_str(&msg.to_json()).unwrap()
}

fn none(p: &mut Party) {
    assert!(p.rx.try_recv().is_err(), "no event expected");
}

#[test]
fn ids_are_normalized_and_validated() {
    assert_eq!(normalize_call_id("abc-def 2").unwrap(), "ABCDEF2");
    assert_eq!(normalize_call_id("ABCDEF"), Err(CallError::BadCallId));
    assert_eq!(normalize_call_id("ABCDEF0"), Err(CallError::BadCallId));
    assert_eq!(normalize_call_id("ABCDEFGH"), Err(CallError::BadCallId));
    for _ in 0..100 {
        let id = random_call_id();
        assert_eq!(normalize_call_id(&id).unwrap(), id);
    }
}

#[test]
fn an_id_is_held_by_one_socket_at_a_time() {
    let reg = Arc::new(CallRegistry::default());
    let _a = register(&reg, 1, "AAAAAAA", "Alice");
    let (tx, _rx) = mpsc::channel(1);
    assert_eq!(
        reg.register(2, Some("aaaaaaa"), None, tx.clone()),
        Err(CallError::IdTaken("AAAAAAA".into()))
    );
    assert_eq!(
        reg.rename("AAAAAAA", Some("BBBBBBB"), None),
        Err(CallError::AlreadyRegistered("AAAAAAA".into()))
    );
    // Another socket's unregister does not free it; its own does.
    reg.unregister("AAAAAAA", 2);
    assert_eq!(reg.counts().0, 1);
    reg.unregister("AAAAAAA", 1);
    assert!(reg.register(2, Some("AAAAAAA"), None, tx.clone()).is_ok());
    let fresh = reg.register(3, None, None, tx).unwrap();
    assert_eq!(normalize_call_id(&fresh).unwrap(), fresh);
}

#[tokio::test]
async fn ring_accept_and_hang_up() {
    let reg = Arc::new(CallRegistry::default());
    let mut a = register(&reg, 1, "AAAAAAA", "Alice");
    let mut b = register(&reg, 2, "BBBBBBB", "Bob");
    reg.call(Some(&a.id), "bbbbbbb").unwrap();
    let calling = next(&mut a);
    assert_eq!(calling["type"], "calling");
    assert_eq!(calling["name"], "Bob");
    let call = calling["call"].as_str().unwrap().to_owned();
    let ring = next(&mut b);
    assert_eq!(ring["type"], "ring");
    assert_eq!(ring["from"], "AAAAAAA");
    assert_eq!(ring["name"], "Alice");
    assert_eq!(ring["call"], call.as_str());

    // Only the callee may accept.
    assert_eq!(
        reg.act(Some(&a.id), &call, CallAction::Accept),
        Err(CallError::NoSuchCall)
    );
    reg.act(Some(&b.id), &call, CallAction::Accept).unwrap();
    let (ta, tb) = (next(&mut a), next(&mut b));
    assert_eq!(ta["type"], "callAccepted");
    assert_eq!(ta["name"], "Bob");
    assert_eq!(tb["name"], "Alice");
    let room = ta["room"].as_str().unwrap().to_owned();
    assert_eq!(tb["room"], room.as_str());
    assert!(room.starts_with(PRIVATE_ROOM_PREFIX));
    assert_eq!(
        room.len(),
        PRIVATE_ROOM_PREFIX.len() + 32,
        "128 random bits"
    );

    assert!(reg.may_join(&room, Some("AAAAAAA")).is_ok());
    assert!(reg.may_join(&room, Some("BBBBBBB")).is_ok());
    assert_eq!(
        reg.may_join(&room, Some("CCCCCCC")),
        Err(CallError::PrivateRoom)
    );
    assert_eq!(reg.may_join(&room, None), Err(CallError::PrivateRoom));
    assert_eq!(
        reg.may_join("call-guess", Some("AAAAAAA")),
        Err(CallError::PrivateRoom)
    );
    assert!(reg.may_join("standup", None).is_ok());

    reg.act(Some(&a.id), &call, CallAction::Hangup).unwrap();
    for p in [&mut a, &mut b] {
        let ended = next(p);
        assert_eq!(ended["type"], "callEnded");
        assert_eq!(ended["reason"], "hangup");
    }
    assert_eq!(
        reg.may_join(&room, Some("AAAAAAA")),
        Err(CallError::PrivateRoom)
    );
    assert_eq!(reg.counts(), (2, 0));
    assert_eq!(
        reg.act(Some(&a.id), &call, CallAction::Hangup),
        Err(CallError::NoSuchCall)
    );
}

#[tokio::test]
async fn decline_cancel_busy_unknown_and_self() {
    let reg = Arc::new(CallRegistry::default());
    let mut a = register(&reg, 1, "AAAAAAA", "Alice");
    let mut b = register(&reg, 2, "BBBBBBB", "Bob");
    let mut c = register(&reg, 3, "CCCCCCC", "Carol");

    reg.call(Some(&a.id), &b.id).unwrap();
    let call = next(&mut a)["call"].as_str().unwrap().to_owned();
    next(&mut b);
    reg.act(Some(&b.id), &call, CallAction::Decline).unwrap();
    assert_eq!(next(&mut a)["reason"], "declined");
    assert_eq!(next(&mut b)["reason"], "declined");

    reg.call(Some(&a.id), &b.id).unwrap();
    let call = next(&mut a)["call"].as_str().unwrap().to_owned();
    next(&mut b);
    assert_eq!(
        reg.act(Some(&b.id), &call, CallAction::Cancel),
        Err(CallError::NoSuchCall),
        "only the caller cancels"
    );
    // Carol calls Bob while Bob is ringing: busy, and Bob hears of it.
    reg.call(Some(&c.id), &b.id).unwrap();
    assert_eq!(next(&mut c)["type"], "calling");
    assert_eq!(next(&mut c)["reason"], "busy");
    let missed = next(&mut b);
    assert_eq!(missed["type"], "missedCall");
    assert_eq!(missed["name"], "Carol");
    // Alice cannot place a second call meanwhile.
    assert_eq!(reg.call(Some(&a.id), &c.id), Err(CallError::CallInProgress));
    reg.act(Some(&a.id), &call, CallAction::Cancel).unwrap();
    assert_eq!(next(&mut a)["reason"], "cancelled");
    assert_eq!(next(&mut b)["reason"], "cancelled");

    assert_eq!(
        reg.call(Some(&a.id), "ZZZZZZZ"),
        Err(CallError::UnknownId("ZZZZZZZ".into()))
    );
    assert_eq!(reg.call(Some(&a.id), "nope"), Err(CallError::BadCallId));
    assert_eq!(reg.call(Some(&a.id), &a.id), Err(CallError::SelfCall));
    assert_eq!(reg.call(None, &a.id), Err(CallError::NotRegistered));
    // Someone in a room is busy too.
    reg.set_in_room(&c.id, "standup", true);
    reg.call(Some(&a.id), &c.id).unwrap();
    next(&mut a);
    assert_eq!(next(&mut a)["reason"], "busy");
    assert_eq!(next(&mut c)["type"], "missedCall");
    none(&mut a);
    none(&mut b);
    none(&mut c);
}

#[tokio::test]
async fn an_unanswered_call_times_out() {
    let reg = Arc::new(CallRegistry::new(Duration::from_millis(400)));
    let mut a = register(&reg, 1, "AAAAAAA", "Alice");
    let mut b = register(&reg, 2, "BBBBBBB", "Bob");
    reg.call(Some(&a.id), &b.id).unwrap();
    next(&mut a);
    next(&mut b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    none(&mut a);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(next(&mut a)["reason"], "timeout");
    assert_eq!(next(&mut b)["reason"], "timeout");
    assert_eq!(reg.counts(), (2, 0));
}

#[tokio::test]
async fn an_answered_call_does_not_time_out() {
    let reg = Arc::new(CallRegistry::new(Duration::from_millis(100)));
    let mut a = register(&reg, 1, "AAAAAAA", "Alice");
    let mut b = register(&reg, 2, "BBBBBBB", "Bob");
    reg.call(Some(&a.id), &b.id).unwrap();
    let call = next(&mut a)["call"].as_str().unwrap().to_owned();
    next(&mut b);
    reg.act(Some(&b.id), &call, CallAction::Accept).unwrap();
    next(&mut a);
    next(&mut b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    none(&mut a);
    none(&mut b);
}

/// Alice calls Bob and Bob answers; returns the call and its room.
fn answered(reg: &Arc<CallRegistry>, a: &mut Party, b: &mut Party) -> (String, String) {
    reg.call(Some(&a.id), &b.id).unwrap();
    let call = next(a)["call"].as_str().unwrap().to_owned();
    next(b);
    reg.act(Some(&b.id), &call, CallAction::Accept).unwrap();
    let room = next(a)["room"].as_str().unwrap().to_owned();
    next(b);
    reg.set_in_room(&a.id, &room, true);
    reg.set_in_room(&b.id, &room, true);
    (call, room)
}

#[tokio::test]
async fn disconnect_or_leaving_the_room_ends_the_call() {
    let reg = Arc::new(CallRegistry::default().with_rejoin_grace(Duration::ZERO));
    let mut a = register(&reg, 1, "AAAAAAA", "Alice");
    let mut b = register(&reg, 2, "BBBBBBB", "Bob");
    let (_, room) = answered(&reg, &mut a, &mut b);
    reg.unregister(&b.id, 2);
    assert_eq!(next(&mut a)["reason"], "disconnected");
    reg.set_in_room(&a.id, &room, false);
    none(&mut a);

    let mut b = register(&reg, 4, "BBBBBBB", "Bob");
    let (_, room) = answered(&reg, &mut a, &mut b);
    reg.set_in_room(&b.id, &room, false);
    assert_eq!(next(&mut a)["reason"], "hangup");
    assert_eq!(next(&mut b)["reason"], "hangup");
}

#[tokio::test]
async fn a_ringing_call_ends_at_once_when_a_socket_closes() {
    let reg = Arc::new(CallRegistry::default());
    let mut a = register(&reg, 1, "AAAAAAA", "Alice");
    let mut b = register(&reg, 2, "BBBBBBB", "Bob");
    reg.call(Some(&a.id), &b.id).unwrap();
    next(&mut a);
    next(&mut b);
    reg.unregister(&b.id, 2);
    assert_eq!(next(&mut a)["reason"], "disconnected");
    assert_eq!(reg.counts(), (1, 0), "Bob's ID is free");
}

#[tokio::test]
async fn a_party_that_comes_back_within_the_grace_period_keeps_the_call() {
    let reg = Arc::new(CallRegistry::default().with_rejoin_grace(Duration::from_millis(300)));
    let mut a = register(&reg, 1, "AAAAAAA", "Alice");
    let mut b = register(&reg, 2, "BBBBBBB", "Bob");
    let (call, room) = answered(&reg, &mut a, &mut b);
    reg.unregister(&b.id, 2);
    none(&mut a);
    // Bob's ID and the call wait: others cannot take the ID over from a
    // live socket, but Bob's new socket can while he is away.
    let (tx, _rx) = mpsc::channel(1);
    assert_eq!(
        reg.register(3, Some("AAAAAAA"), None, tx),
        Err(CallError::IdTaken("AAAAAAA".into()))
    );
    assert_eq!(reg.counts(), (2, 1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut b = register(&reg, 5, "BBBBBBB", "Bob again");
    assert!(reg.may_join(&room, Some(&b.id)).is_ok(), "Bob may rejoin");
    reg.set_in_room(&b.id, &room, true);
    // The old socket's grace period ending changes nothing now.
    tokio::time::sleep(Duration::from_millis(400)).await;
    none(&mut a);
    none(&mut b);
    assert_eq!(reg.counts(), (2, 1));
    // Bob is busy for others again, and his name is the new one.
    let mut c = register(&reg, 6, "CCCCCCC", "Carol");
    reg.call(Some(&c.id), &b.id).unwrap();
    assert_eq!(next(&mut c)["name"], "Bob again");
    assert_eq!(next(&mut c)["reason"], "busy");
    assert_eq!(next(&mut b)["type"], "missedCall");
    // The call still works: hanging up reaches both.
    reg.act(Some(&a.id), &call, CallAction::Hangup).unwrap();
    assert_eq!(next(&mut a)["reason"], "hangup");
    assert_eq!(next(&mut b)["reason"], "hangup");
}

#[tokio::test]
async fn the_call_ends_when_the_grace_period_passes() {
    let reg = Arc::new(CallRegistry::default().with_rejoin_grace(Duration::from_millis(300)));
    let mut a = register(&reg, 1, "AAAAAAA", "Alice");
    let mut b = register(&reg, 2, "BBBBBBB", "Bob");
    let (call, room) = answered(&reg, &mut a, &mut b);
    reg.unregister(&b.id, 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    none(&mut a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ended = next(&mut a);
    assert_eq!(ended["reason"], "disconnected");
    assert_eq!(ended["call"], call.as_str());
    assert_eq!(reg.counts(), (1, 0), "Bob's ID is free");
    // Back too late: a fresh registration, and the room is closed.
    let b = register(&reg, 7, "BBBBBBB", "Bob");
    assert_eq!(
        reg.may_join(&room, Some(&b.id)),
        Err(CallError::PrivateRoom)
    );
}

#[tokio::test]
async fn hanging_up_on_an_absent_party_frees_its_id() {
    let reg = Arc::new(CallRegistry::default().with_rejoin_grace(Duration::from_secs(60)));
    let mut a = register(&reg, 1, "AAAAAAA", "Alice");
    let mut b = register(&reg, 2, "BBBBBBB", "Bob");
    let (call, room) = answered(&reg, &mut a, &mut b);
    reg.unregister(&b.id, 2);
    reg.act(Some(&a.id), &call, CallAction::Hangup).unwrap();
    assert_eq!(next(&mut a)["reason"], "hangup");
    assert_eq!(reg.counts(), (1, 0));
    let b = register(&reg, 3, "BBBBBBB", "Bob");
    assert_eq!(
        reg.may_join(&room, Some(&b.id)),
        Err(CallError::PrivateRoom)
    );
}
