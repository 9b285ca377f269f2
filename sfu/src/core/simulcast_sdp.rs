//! Keeps a publisher's simulcast layers across renegotiation.
//!
//! `rtc` 0.21.1 rebuilds the receiver of every sending m-section each time a
//! remote description is applied: a simulcast (`a=rid`) receiver gets a new
//! track whose layers have no SSRC, to be learnt again from the `mid` and
//! `rid` header extensions of the next packets. Chromium stops sending those
//! extensions once a receiver report has acknowledged the SSRC, so after the
//! SFU's first re-offer to a simulcast publisher `rtc` dropped all of its
//! video as an unknown SSRC (webrtc-rs note 21,
//! `tests/webrtc_rs_notes.rs::a_renegotiation_forgets_simulcast_ssrcs`).
//!
//! `rtc` leaves a receiver alone when the remote m-section names no track (no
//! `a=msid` and no `a=ssrc`). So before a client's description reaches `rtc`,
//! [`keep_simulcast_receivers`] removes those lines from each simulcast
//! m-section that the previous description already announced with the same
//! mid, rids and msid: the receiver and the SSRCs it learnt stay as they were.
//! Anything new or changed goes through untouched.

use std::borrow::Cow;

/// The lines that name a sending m-section's track to `rtc`.
const TRACK_LINES: [&str; 3] = ["a=msid:", "a=ssrc:", "a=ssrc-group:"];

/// What identifies a simulcast m-section from one description to the next.
#[derive(Debug, PartialEq, Eq)]
struct SimulcastSection<'a> {
    mid: &'a str,
    msid: &'a str,
    rids: Vec<&'a str>,
}

/// `sdp` with the track lines removed from every sending simulcast
/// m-section that `previous` (the remote description `rtc` holds now)
/// already announced unchanged. Borrowed when nothing is removed.
pub(super) fn keep_simulcast_receivers<'a>(previous: Option<&str>, sdp: &'a str) -> Cow<'a, str> {
    let Some(previous) = previous else {
        return Cow::Borrowed(sdp);
    };
    let known: Vec<SimulcastSection<'_>> = sections(previous)
        .filter_map(|lines| simulcast_section(&lines))
        .collect();
    if known.is_empty() {
        return Cow::Borrowed(sdp);
    }
    let mut out = String::with_capacity(sdp.len());
    let mut changed = false;
    for lines in sections(sdp) {
        let keep = simulcast_section(&lines).is_some_and(|s| known.contains(&s));
        for line in lines {
            if keep && TRACK_LINES.iter().any(|p| line.trim_end().starts_with(p)) {
                changed = true;
                continue;
            }
            out.push_str(line);
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(sdp)
    }
}

/// The description cut before each `m=` line, every line with its ending:
/// the session part first, then one group per m-section.
fn sections(sdp: &str) -> impl Iterator<Item = Vec<&str>> {
    let mut groups: Vec<Vec<&str>> = vec![Vec::new()];
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            groups.push(Vec::new());
        }
        if let Some(group) = groups.last_mut() {
            group.push(line);
        }
    }
    groups.into_iter()
}

/// The identity of a media section that sends simulcast, or `None` for any
/// other section (no rids, no mid or msid, or not sending).
fn simulcast_section<'a>(lines: &[&'a str]) -> Option<SimulcastSection<'a>> {
    if !lines.first()?.starts_with("m=") {
        return None;
    }
    let mut mid = None;
    let mut msid = None;
    let mut rids = Vec::new();
    for line in lines.iter().map(|l| l.trim_end()) {
        if line == "a=recvonly" || line == "a=inactive" {
            return None;
        } else if let Some(v) = line.strip_prefix("a=mid:") {
            mid = Some(v);
        } else if let Some(v) = line.strip_prefix("a=msid:") {
            msid = Some(v);
        } else if let Some(v) = line.strip_prefix("a=rid:") {
            let mut fields = v.split_whitespace();
            if let (Some(rid), Some("send")) = (fields.next(), fields.next()) {
                rids.push(rid);
            }
        }
    }
    if rids.is_empty() {
        return None;
    }
    rids.sort_unstable();
    Some(SimulcastSection {
        mid: mid?,
        msid: msid?,
        rids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(mid: &str, msid: &str, rids: &[&str], direction: &str) -> String {
        let mut s = format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:{mid}\r\na={direction}\r\na=msid:{msid}\r\n"
        );
        for rid in rids {
            s.push_str(&format!("a=rid:{rid} send\r\n"));
        }
        if !rids.is_empty() {
            s.push_str(&format!("a=simulcast:send {}\r\n", rids.join(";")));
        } else {
            s.push_str("a=ssrc:1234 cname:x\r\n");
        }
        s
    }

    const SESSION: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

    fn sdp(sections: &[String]) -> String {
        format!("{SESSION}{}", sections.concat())
    }

    #[test]
    fn a_first_description_goes_through_untouched() {
        let offer = sdp(&[section("0", "s t", &["q", "h", "f"], "sendrecv")]);
        assert!(matches!(
            keep_simulcast_receivers(None, &offer),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn an_unchanged_simulcast_section_loses_its_track_lines_only() {
        let audio = section("0", "s a", &[], "sendrecv");
        let video = section("1", "s v", &["q", "h", "f"], "sendrecv");
        let before = sdp(&[audio.clone(), video.clone()]);
        let after = sdp(&[
            audio.clone(),
            video.clone(),
            section("2", "-", &[], "recvonly"),
        ]);
        let kept = keep_simulcast_receivers(Some(&before), &after);
        let expected = sdp(&[
            audio,
            video.replace("a=msid:s v\r\n", ""),
            section("2", "-", &[], "recvonly"),
        ]);
        assert_eq!(kept, expected);
    }

    #[test]
    fn a_changed_track_or_layer_set_goes_through() {
        let before = sdp(&[section("1", "s v", &["q", "h", "f"], "sendrecv")]);
        for after in [
            section("1", "s other", &["q", "h", "f"], "sendrecv"),
            section("1", "s v", &["q", "h"], "sendrecv"),
            section("2", "s v", &["q", "h", "f"], "sendrecv"),
        ] {
            let after = sdp(&[after]);
            assert!(matches!(
                keep_simulcast_receivers(Some(&before), &after),
                Cow::Borrowed(_)
            ));
        }
    }

    #[test]
    fn rids_in_any_order_and_lf_endings_match() {
        let before =
            sdp(&[section("1", "s v", &["f", "h", "q"], "sendonly")]).replace("\r\n", "\n");
        let after = sdp(&[section("1", "s v", &["q", "h", "f"], "sendonly")]);
        let kept = keep_simulcast_receivers(Some(&before), &after);
        assert!(!kept.contains("a=msid"));
        assert!(kept.contains("a=rid:q send\r\n"));
    }

    #[test]
    fn a_section_no_longer_sending_is_left_alone() {
        let before = sdp(&[section("1", "s v", &["q", "h", "f"], "sendrecv")]);
        let after = sdp(&[section("1", "s v", &["q", "h", "f"], "inactive")]);
        assert!(matches!(
            keep_simulcast_receivers(Some(&before), &after),
            Cow::Borrowed(_)
        ));
    }
}
