//! A long-lived subscriber in a room with churn: each ended Subscription's
//! m-line is reused by the next Track of its kind, so the subscriber's SDP
//! stays small however many publishers come and go.

mod common;

use common::Sim;

/// The media sections of an SDP, each as its lines.
fn sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            out.push(Vec::new());
        }
        if let Some(section) = out.last_mut() {
            section.push(line);
        }
    }
    out
}

/// The SSRC the SDP announces for `stream`'s video, and its section's mid.
fn video_ssrc_of(sdp: &str, stream: &str) -> Option<(u32, String)> {
    sections(sdp).into_iter().find_map(|lines| {
        if !lines[0].starts_with("m=video") || lines.contains(&"a=inactive") {
            return None;
        }
        let msid = format!("a=msid:{stream} ");
        lines.iter().find(|l| l.starts_with(&msid))?;
        let ssrc = lines
            .iter()
            .find_map(|l| l.strip_prefix("a=ssrc:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let mid = lines.iter().find_map(|l| l.strip_prefix("a=mid:"))?;
        Some((ssrc, mid.to_owned()))
    })
}

#[test]
fn churn_reuses_m_lines_and_media_flows_on_the_reused_one() {
    let mut sim = Sim::new();
    let stay = sim.add_client("stay", false);
    sim.join(stay, "room");
    sim.connect_all();
    let mut mids = std::collections::HashSet::new();
    let mut ssrcs = std::collections::HashSet::new();
    for round in 0..50u16 {
        let p = sim.add_client(&format!("p{round}"), true);
        let id = sim.join(p, "room");
        sim.connect_all();
        let before = sim.clients[stay].received.len();
        sim.send_frames(p, 1, 20);
        let sdp = sim.clients[stay]
            .pc
            .remote_description()
            .expect("an offer from the SFU")
            .sdp
            .clone();
        let (ssrc, mid) = video_ssrc_of(&sdp, &id.to_string())
            .unwrap_or_else(|| panic!("round {round}: no sendonly video m-line for {id}"));
        mids.insert(mid);
        ssrcs.insert(ssrc);
        let got = sim.clients[stay].received[before..]
            .iter()
            .filter(|r| r.header.ssrc == ssrc)
            .count();
        assert!(
            got >= 10,
            "round {round}: {got} video packets on the announced SSRC"
        );
        let stray = sim.clients[stay].received[before..]
            .iter()
            .filter(|r| r.header.payload_type >= 96 && r.header.ssrc != ssrc)
            .filter(|r| r.kind == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video)
            .count();
        assert_eq!(stray, 0, "round {round}: video on another SSRC");
        if round < 49 {
            sim.leave(p);
            sim.advance(std::time::Duration::from_millis(50));
        }
    }
    let sdp = sim.clients[stay]
        .pc
        .remote_description()
        .unwrap()
        .sdp
        .clone();
    let count = sections(&sdp).len();
    println!(
        "m-sections after 50 publishers: {count}, SDP {} bytes",
        sdp.len()
    );
    // Its own receive-only audio m-line, plus one audio and one video.
    assert!(count <= 4, "{count} m-sections:\n{sdp}");
    assert!(sdp.len() < 6_000, "SDP of {} bytes", sdp.len());
    // Every publisher's video came on the same m-line.
    assert_eq!(mids.len(), 1, "video m-lines used: {mids:?}");
    assert_eq!(ssrcs.len(), 1, "video SSRCs used: {ssrcs:?}");
}

#[test]
fn a_reused_sender_forwards_only_after_the_answer_and_numbers_on() {
    let mut sim = Sim::new();
    let stay = sim.add_client("stay", false);
    sim.join(stay, "room");
    sim.connect_all();
    let first = sim.add_client("first", true);
    sim.join(first, "room");
    sim.connect_all();
    sim.send_frames(first, 1, 20);
    let last_seq = sim.clients[stay]
        .received
        .iter()
        .filter(|r| r.kind == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video)
        .map(|r| r.header.sequence_number)
        .last()
        .expect("video from the first publisher");
    sim.leave(first);

    // The next publisher's Track takes the spare sender; the subscriber
    // holds the offer that turns it back on.
    sim.clients[stay].auto_answer = false;
    let second = sim.add_client("second", true);
    let second_id = sim.join(second, "room");
    sim.connect_all();
    sim.send_frames(second, 1, 20);
    let offer = sim.clients[stay]
        .held_offers
        .last()
        .cloned()
        .expect("an offer with the reused m-line");
    assert_eq!(sections(&offer).len(), 2, "no new m-line:\n{offer}");
    assert!(
        sim.video_from(stay, second_id).is_empty()
            && !sim.clients[stay]
                .received
                .iter()
                .any(|r| r.header.sequence_number == last_seq.wrapping_add(1)),
        "nothing is forwarded before the answer"
    );

    // Answer it: media flows, numbered on from the first publisher's.
    let now = sim.now;
    let c = &mut sim.clients[stay];
    c.held_offers.clear();
    c.auto_answer = true;
    let desc = rtc::peer_connection::sdp::RTCSessionDescription::offer(offer).unwrap();
    c.pc.set_remote_description(now, desc).unwrap();
    let answer = c.pc.create_answer(None).unwrap();
    c.pc.set_local_description(now, answer.clone()).unwrap();
    let id = c.peer_id.unwrap();
    sim.core.handle_answer(now, id, answer.sdp).unwrap();
    sim.pump();
    let before = sim.clients[stay].received.len();
    sim.send_frames(second, 21, 20);
    let after: Vec<u16> = sim.clients[stay].received[before..]
        .iter()
        .filter(|r| r.kind == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video)
        .map(|r| r.header.sequence_number)
        .collect();
    assert!(
        after.len() >= 10,
        "{} packets after the answer",
        after.len()
    );
    assert_eq!(
        after[0],
        last_seq.wrapping_add(1),
        "the reused sender numbers on"
    );
}
