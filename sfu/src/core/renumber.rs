//! Sequence numbers for one Subscription: the publisher's numbering mapped
//! onto the subscriber's, with padding-only packets left out.
//!
//! Without RTX, browsers probe their bandwidth with padding-only packets on
//! the media stream. Forwarding them costs the subscriber's downlink, and a
//! probe lost on the publisher's leg can never be resent (the publisher
//! keeps no padding), so the subscriber would NACK a hole nobody fills, and
//! its jitter buffer waits on it. So padding takes no sequence number on the
//! subscriber's leg:
//!
//! - a padding packet that is the newest is dropped and remembered;
//! - when the next media packet arrives, each number in the hole before it
//!   that was not padding (a packet lost upstream, which a retransmission
//!   may still bring) gets a subscriber number reserved, in order;
//! - except where the hole cannot have held video. Publishers send padding
//!   between frames only, so in a hole between one picture and the next
//!   (VP8 and VP9 picture ids, `picture.rs`) only the rest of the last
//!   picture and the start of the next one can be missing video; the lost
//!   numbers between the padding that did arrive were padding too. A hole
//!   after a frame's last packet and before the next picture's first
//!   closes with no numbers at all, and so does one longer than
//!   [`HOLE_WINDOW`];
//! - a late packet (a retransmission from the publisher, or one reordered)
//!   goes into the number reserved for it, or is dropped if none was.
//!
//! Two rings map publisher numbers to subscriber numbers and back, for the
//! late packets and for answering the subscriber's NACKs. They are
//! allocated once per Subscription; placing a packet allocates nothing.

use super::forwarder::DropReason;
use super::picture::FrameInfo;

/// How many recent numbers each direction of the map remembers (a power of
/// two): about 5 s of 1 Mbit/s video. A NACK or a late packet older than
/// this is too late.
pub const MAP_WINDOW: usize = 512;
/// A hole longer than this is closed without reserving numbers: it is an
/// outage, not loss, and the subscriber's decoder needs a keyframe anyway.
pub const HOLE_WINDOW: i64 = 256;
/// A packet further behind the newest than this is dropped rather than
/// placed: it would look like a wrap-around.
const MAX_REORDER: u16 = 1000;

/// What the Forwarder knows about a packet besides its sequence number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketInfo {
    /// The packet carries no payload, only padding.
    pub padding_only: bool,
    /// The RTP marker bit (for video, the last packet of a frame).
    pub marker: bool,
    /// The picture and frame start, for VP8 and VP9 video.
    pub frame: Option<FrameInfo>,
}

/// A ring entry: `key` is the number it maps from plus one (0 is empty).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    key: u32,
    value: u16,
}

/// The number mapping of one Subscription (see the module docs).
#[derive(Debug, Clone)]
pub struct Renumbering {
    /// The subscriber number the next placed packet gets.
    next_out: u16,
    /// Whether a source is mapped (false before the first packet and after
    /// a source switch).
    started: bool,
    /// Extended publisher number of the first packet of this source.
    first_ext: i64,
    /// The newest publisher number seen (padding included), extended, and
    /// its 16-bit form to extend the next one against.
    highest_ext: i64,
    highest_seq: u16,
    /// The newest publisher number that has a subscriber number.
    placed_ext: i64,
    /// Padding seen after `placed_ext`: bit i is number `placed_ext + 1 + i`.
    padding: [u64; 4],
    /// The newest placed packet ended a frame, and its picture.
    last_marker: bool,
    last_frame: Option<FrameInfo>,
    /// Extended publisher number → subscriber number.
    out_of_in: Box<[Slot; MAP_WINDOW]>,
    /// Subscriber number → publisher number.
    in_of_out: Box<[Slot; MAP_WINDOW]>,
}

impl Renumbering {
    /// A mapping whose first packet will get `initial_out`.
    pub fn new(initial_out: u16) -> Self {
        Self {
            next_out: initial_out,
            started: false,
            first_ext: 0,
            highest_ext: 0,
            highest_seq: 0,
            placed_ext: 0,
            padding: [0; 4],
            last_marker: false,
            last_frame: None,
            out_of_in: Box::new([Slot::default(); MAP_WINDOW]),
            in_of_out: Box::new([Slot::default(); MAP_WINDOW]),
        }
    }

    /// Whether a source is mapped.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Forgets the current source: the next packet starts a new one, whose
    /// numbers continue after the last number given out.
    pub fn restart(&mut self) {
        self.started = false;
        self.out_of_in.fill(Slot::default());
        self.in_of_out.fill(Slot::default());
    }

    /// Places a packet of publisher number `seq`: its subscriber number, or
    /// why it is not sent. Also returns whether it is the newest placed.
    pub fn place(&mut self, seq: u16, info: PacketInfo) -> Result<(u16, bool), DropReason> {
        if !self.started {
            if info.padding_only {
                return Err(DropReason::Padding);
            }
            let ext = i64::from(seq);
            self.started = true;
            self.first_ext = ext;
            self.highest_ext = ext;
            self.highest_seq = seq;
            self.placed_ext = ext - 1;
            self.padding = [0; 4];
            return Ok((self.place_newest(ext, info), true));
        }
        // A signed 16-bit distance from the newest handles the wrap both ways.
        let delta = seq.wrapping_sub(self.highest_seq) as i16;
        let ext = self.highest_ext + i64::from(delta);
        if delta < 0 {
            if delta.unsigned_abs() > MAX_REORDER {
                return Err(DropReason::TooOld);
            }
            if ext < self.first_ext {
                return Err(DropReason::BeforeStart);
            }
        } else {
            self.highest_ext = ext;
            self.highest_seq = seq;
        }
        if ext <= self.placed_ext {
            // Late: into the number reserved for it, if any.
            return match self.lookup_out(ext) {
                Some(out) => Ok((out, false)),
                None if info.padding_only => Err(DropReason::Padding),
                None => Err(DropReason::TooOld),
            };
        }
        let after = ext - self.placed_ext - 1;
        if info.padding_only {
            if after < HOLE_WINDOW {
                // after < 256, so the index and bit fit.
                self.padding[(after / 64) as usize] |= 1 << (after % 64);
            }
            return Err(DropReason::Padding);
        }
        if after > 0 && after <= HOLE_WINDOW {
            for range in self.video_in_hole(after, info) {
                for i in range {
                    if !self.is_padding(i) {
                        self.reserve(self.placed_ext + 1 + i);
                    }
                }
            }
        }
        Ok((self.place_newest(ext, info), true))
    }

    /// The publisher number of the packet sent as subscriber number `out`,
    /// if it is recent and belongs to the current source.
    pub fn original(&self, out: u16) -> Option<u16> {
        let slot = self.in_of_out[usize::from(out) % MAP_WINDOW];
        (slot.key == u32::from(out) + 1).then_some(slot.value)
    }

    /// Which positions of the hole of `len` numbers before `info`'s packet
    /// may have held video, and so get numbers reserved. Publishers send
    /// padding between frames only, so when the hole lies between one
    /// picture and the next (picture ids), it holds at most the rest of the
    /// last picture (up to the first padding seen in it) and the start of
    /// this one (after the last padding seen); the numbers between are
    /// padding. A frame that ended before the hole and one that starts
    /// right after it leave nothing to reserve. Without picture ids, or
    /// with a picture missing, every number in the hole may be video.
    fn video_in_hole(&self, len: i64, info: PacketInfo) -> [std::ops::Range<i64>; 2] {
        let all = [0..len, 0..0];
        let (Some(last), Some(this)) = (self.last_frame, info.frame) else {
            return all;
        };
        if !this.picture.follows(last.picture) {
            return all;
        }
        let first_padding = (0..len).find(|i| self.is_padding(*i));
        let last_padding = (0..len).rev().find(|i| self.is_padding(*i));
        let lead_end = match (self.last_marker, first_padding) {
            (true, _) => 0,
            (false, Some(i)) => i,
            (false, None) => len,
        };
        let trail_start = match (this.starts_frame, last_padding) {
            (true, _) => len,
            (false, Some(i)) => i + 1,
            (false, None) => 0,
        };
        if lead_end >= trail_start {
            return all;
        }
        [0..lead_end, trail_start..len]
    }

    /// Whether position `i` of the current hole (number `placed_ext + 1 +
    /// i`) arrived as padding.
    fn is_padding(&self, i: i64) -> bool {
        (0..HOLE_WINDOW).contains(&i) && self.padding[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Gives the newest packet `ext` the next number and moves the padding
    /// window past it.
    fn place_newest(&mut self, ext: i64, info: PacketInfo) -> u16 {
        let out = self.reserve(ext);
        let shift = ext - self.placed_ext;
        self.padding = shift_right(self.padding, shift);
        self.placed_ext = ext;
        self.last_marker = info.marker;
        self.last_frame = info.frame;
        out
    }

    /// Gives publisher number `ext` the next subscriber number.
    fn reserve(&mut self, ext: i64) -> u16 {
        let out = self.next_out;
        self.next_out = out.wrapping_add(1);
        // Extended numbers of one source stay far below 2^32 packets.
        let key = (ext as u32).wrapping_add(1);
        self.out_of_in[(ext as usize) % MAP_WINDOW] = Slot { key, value: out };
        self.in_of_out[usize::from(out) % MAP_WINDOW] = Slot {
            key: u32::from(out) + 1,
            value: ext as u16,
        };
        out
    }

    fn lookup_out(&self, ext: i64) -> Option<u16> {
        if self.placed_ext - ext >= MAP_WINDOW as i64 {
            return None;
        }
        let slot = self.out_of_in[(ext as usize) % MAP_WINDOW];
        (slot.key == (ext as u32).wrapping_add(1)).then_some(slot.value)
    }
}

/// Shifts a 256-bit set (bit 0 in word 0) down by `by` bits.
fn shift_right(bits: [u64; 4], by: i64) -> [u64; 4] {
    if !(0..256).contains(&by) {
        return [0; 4];
    }
    let (words, rest) = ((by / 64) as usize, (by % 64) as u32);
    let mut out = [0u64; 4];
    for (i, word) in out.iter_mut().enumerate() {
        let lo = bits.get(i + words).copied().unwrap_or(0);
        let hi = bits.get(i + words + 1).copied().unwrap_or(0);
        *word = if rest == 0 {
            lo
        } else {
            lo >> rest | hi << (64 - rest)
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::picture::PictureId;
    use super::*;

    fn media() -> PacketInfo {
        PacketInfo::default()
    }

    fn padding() -> PacketInfo {
        PacketInfo {
            padding_only: true,
            ..Default::default()
        }
    }

    /// A one-packet VP8 frame of picture `id`.
    fn frame(id: u16) -> PacketInfo {
        PacketInfo {
            padding_only: false,
            marker: true,
            frame: Some(FrameInfo {
                picture: PictureId::new(id, true),
                starts_frame: true,
            }),
        }
    }

    fn out(r: &mut Renumbering, seq: u16, info: PacketInfo) -> Result<u16, DropReason> {
        r.place(seq, info).map(|(out, _)| out)
    }

    #[test]
    fn padding_takes_no_number() {
        let mut r = Renumbering::new(100);
        assert_eq!(out(&mut r, 10, media()), Ok(100));
        assert_eq!(out(&mut r, 11, padding()), Err(DropReason::Padding));
        assert_eq!(out(&mut r, 12, padding()), Err(DropReason::Padding));
        assert_eq!(out(&mut r, 13, media()), Ok(101));
        assert_eq!(r.original(101), Some(13));
        assert_eq!(r.original(100), Some(10));
    }

    #[test]
    fn a_lost_packet_keeps_its_number_for_a_retransmission() {
        let mut r = Renumbering::new(0);
        out(&mut r, 10, media()).unwrap();
        out(&mut r, 11, padding()).unwrap_err();
        // 12 is lost upstream; 13 arrives.
        assert_eq!(out(&mut r, 13, media()), Ok(2));
        assert_eq!(r.original(1), Some(12), "the NACK for 1 asks for 12");
        // The publisher's retransmission fills the hole.
        assert_eq!(r.place(12, media()), Ok((1, false)));
    }

    #[test]
    fn lost_padding_between_pictures_leaves_no_hole() {
        let mut r = Renumbering::new(0);
        assert_eq!(out(&mut r, 10, frame(7)), Ok(0));
        out(&mut r, 11, padding()).unwrap_err();
        // 12 and 13 (padding) are lost upstream; 14 is the next picture.
        assert_eq!(out(&mut r, 14, frame(8)), Ok(1));
        assert_eq!(r.original(1), Some(14));
        // Had 12 been video after all, its late copy has nowhere to go.
        assert_eq!(out(&mut r, 12, media()), Err(DropReason::TooOld));
    }

    #[test]
    fn a_skipped_picture_keeps_its_holes() {
        let mut r = Renumbering::new(0);
        out(&mut r, 10, frame(7)).unwrap();
        // 11 (picture 8) lost: picture 9 does not follow 7.
        assert_eq!(out(&mut r, 12, frame(9)), Ok(2));
        assert_eq!(r.original(1), Some(11));
    }

    /// A packet of picture `id` that is not the first of its frame.
    fn middle(id: u16, marker: bool) -> PacketInfo {
        PacketInfo {
            marker,
            frame: Some(FrameInfo {
                picture: PictureId::new(id, true),
                starts_frame: false,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_ends_of_a_hole_between_pictures_may_be_video() {
        let mut r = Renumbering::new(0);
        // Picture 7's packet 10 has no marker: its end is still to come.
        out(&mut r, 10, middle(7, false)).unwrap();
        // 11 lost (picture 7's end), 12 padding, 13 lost (padding), 14
        // padding, 15 lost (picture 8's start), 16 picture 8's middle.
        out(&mut r, 12, padding()).unwrap_err();
        out(&mut r, 14, padding()).unwrap_err();
        assert_eq!(out(&mut r, 16, middle(8, true)), Ok(3));
        assert_eq!(r.original(1), Some(11));
        assert_eq!(r.original(2), Some(15));
        assert_eq!(out(&mut r, 13, media()), Err(DropReason::TooOld));
        assert_eq!(out(&mut r, 15, media()), Ok(2));
    }

    #[test]
    fn a_hole_inside_one_picture_is_all_video() {
        let mut r = Renumbering::new(0);
        out(&mut r, 10, middle(7, false)).unwrap();
        assert_eq!(out(&mut r, 13, middle(7, true)), Ok(3));
    }

    #[test]
    fn late_padding_fills_its_reserved_number() {
        let mut r = Renumbering::new(0);
        out(&mut r, 10, media()).unwrap();
        assert_eq!(out(&mut r, 12, media()), Ok(2));
        assert_eq!(out(&mut r, 11, padding()), Ok(1));
    }

    #[test]
    fn reordering_keeps_places_and_wraps() {
        let mut r = Renumbering::new(100);
        assert_eq!(out(&mut r, 65_534, media()), Ok(100));
        assert_eq!(out(&mut r, 1, media()), Ok(103));
        assert_eq!(out(&mut r, 65_535, media()), Ok(101));
        assert_eq!(out(&mut r, 0, media()), Ok(102));
        assert_eq!(out(&mut r, 65_533, media()), Err(DropReason::BeforeStart));
    }

    #[test]
    fn numbering_continues_after_a_restart() {
        let mut r = Renumbering::new(65_535);
        out(&mut r, 500, media()).unwrap();
        r.restart();
        assert_eq!(r.original(65_535), None, "the old source is forgotten");
        assert_eq!(out(&mut r, 9, padding()), Err(DropReason::Padding));
        assert_eq!(out(&mut r, 9_000, media()), Ok(0));
        assert_eq!(out(&mut r, 9_001, media()), Ok(1));
    }

    #[test]
    fn a_long_outage_closes_without_numbers() {
        let mut r = Renumbering::new(0);
        out(&mut r, 0, media()).unwrap();
        assert_eq!(out(&mut r, 1_000, media()), Ok(1));
    }

    #[test]
    fn long_padding_runs_across_words() {
        let mut r = Renumbering::new(0);
        out(&mut r, 0, media()).unwrap();
        for seq in 1..200 {
            if seq != 150 {
                out(&mut r, seq, padding()).unwrap_err();
            }
        }
        // Only 150 is unaccounted for.
        assert_eq!(out(&mut r, 200, media()), Ok(2));
        assert_eq!(r.original(1), Some(150));
        for seq in 201..230 {
            out(&mut r, seq, padding()).unwrap_err();
        }
        assert_eq!(out(&mut r, 230, media()), Ok(3));
    }

    #[test]
    fn shifting_the_padding_set() {
        let bits = [1, 1 << 63, 0, 1 << 5];
        assert_eq!(shift_right(bits, 0), bits);
        assert_eq!(shift_right(bits, 1), [0, 1 << 62, 0, 1 << 4]);
        assert_eq!(shift_right(bits, 64), [1 << 63, 0, 1 << 5, 0]);
        assert_eq!(shift_right(bits, 197), [1, 0, 0, 0]);
        assert_eq!(shift_right(bits, 256), [0; 4]);
    }

    #[test]
    fn nacks_beyond_the_window_are_too_late() {
        let mut r = Renumbering::new(0);
        for seq in 0..(MAP_WINDOW as u16 + 10) {
            out(&mut r, seq, media()).unwrap();
        }
        assert_eq!(r.original(5), None);
        assert_eq!(
            r.original(MAP_WINDOW as u16 + 9),
            Some(MAP_WINDOW as u16 + 9)
        );
    }
}
