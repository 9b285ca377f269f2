//! Synthetic media: VP8 video and Opus-sized audio RTP payloads, each
//! stamped so that a receiver can measure loss and latency exactly.
//!
//! Every payload carries a [`Stamp`] right after its codec headers: a magic
//! number, a per-track packet counter, the send time (nanoseconds since the
//! UNIX epoch, see [`now_ns`]) and the frame it belongs to. Video payloads
//! are real VP8 RTP payloads (RFC 7741): a payload descriptor with a 15-bit
//! picture id, and on the first packet of each frame the VP8 frame tag
//! (RFC 6386 §9.1), which for keyframes includes the start code and the
//! picture size. The rest of each frame is filler, so it has the size and
//! structure of real video without being decodable.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

/// Marks a payload as ours.
pub const MAGIC: [u8; 4] = *b"SFLT";
/// Encoded size of a [`Stamp`].
pub const STAMP_LEN: usize = 25;
/// The largest RTP payload we build (leaves room for SRTP and extensions
/// under a 1,200-byte datagram).
pub const MAX_PAYLOAD: usize = 1_100;
/// Size of our VP8 payload descriptor (X and I set, 15-bit picture id).
const VP8_DESCRIPTOR_LEN: usize = 4;
/// Size of a VP8 keyframe header: frame tag, start code, width and height.
const VP8_KEYFRAME_HEADER_LEN: usize = 10;
/// Size of a VP8 interframe header: the frame tag alone.
const VP8_INTERFRAME_HEADER_LEN: usize = 3;
/// The picture size written into keyframe headers.
const VIDEO_WIDTH: u16 = 640;
const VIDEO_HEIGHT: u16 = 480;
/// The Opus TOC byte: configuration 31 (CELT, fullband, 20 ms), mono, one frame.
const OPUS_TOC: u8 = 31 << 3;
/// Opus at 32 kbit/s in 20 ms packets.
pub const AUDIO_PAYLOAD_LEN: usize = 80;
/// Audio packets per second (20 ms each).
pub const AUDIO_PACKETS_PER_SECOND: u32 = 50;

/// Nanoseconds since the UNIX epoch, monotonic within this process: the
/// wall clock is read once and then advanced by `Instant`. Every process on
/// the machine shares the epoch, so send and receive times compare directly.
pub fn now_ns() -> u64 {
    static BASE: OnceLock<(Instant, u64)> = OnceLock::new();
    let (instant, wall) = BASE.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        (Instant::now(), wall)
    });
    let elapsed = u64::try_from(instant.elapsed().as_nanos()).unwrap_or(u64::MAX);
    wall.saturating_add(elapsed)
}

/// What each of our payloads carries, after its codec headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Per-track packet counter, from 0.
    pub seq: u32,
    /// When the packet was handed to the sending stack, in [`now_ns`] time.
    pub send_ns: u64,
    /// Frame number (for audio, equal to `seq`).
    pub frame: u32,
    /// Index of this packet in its frame.
    pub index: u16,
    /// Number of packets in its frame.
    pub count: u16,
    /// Whether the frame is a keyframe.
    pub keyframe: bool,
}

impl Stamp {
    /// Appends the encoded stamp.
    pub fn write(&self, out: &mut BytesMut) {
        out.put_slice(&MAGIC);
        out.put_u32(self.seq);
        out.put_u64(self.send_ns);
        out.put_u32(self.frame);
        out.put_u16(self.index);
        out.put_u16(self.count);
        out.put_u8(u8::from(self.keyframe));
    }

    /// Decodes a stamp from the start of `bytes`.
    pub fn read(bytes: &[u8]) -> Option<Stamp> {
        let b = bytes.get(..STAMP_LEN)?;
        if b[..4] != MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let mut send = [0u8; 8];
        send.copy_from_slice(&b[8..16]);
        Some(Stamp {
            seq: u32_at(4),
            send_ns: u64::from_be_bytes(send),
            frame: u32_at(16),
            index: u16_at(20),
            count: u16_at(22),
            keyframe: b[24] & 1 == 1,
        })
    }
}

/// A received payload, understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The stamp.
    pub stamp: Stamp,
    /// For video: whether the VP8 frame header (first packet of a frame)
    /// says keyframe. `None` for packets that do not start a frame, and for
    /// audio.
    pub vp8_keyframe: Option<bool>,
}

/// Parses a VP8 RTP payload built by [`VideoSource`] (or any VP8 payload
/// whose frame data begins with our stamp).
pub fn parse_vp8(payload: &[u8]) -> Option<Parsed> {
    let first = *payload.first()?;
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            // Picture id, 7 or 15 bits.
            let pid = *payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    let starts_frame = first & 0x10 != 0 && first & 0x07 == 0;
    let mut vp8_keyframe = None;
    if starts_frame {
        let tag = *payload.get(at)?;
        let key = tag & 0x01 == 0;
        if key {
            if payload.get(at + 3..at + 6)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            at += VP8_KEYFRAME_HEADER_LEN;
        } else {
            at += VP8_INTERFRAME_HEADER_LEN;
        }
        vp8_keyframe = Some(key);
    }
    let stamp = Stamp::read(payload.get(at..)?)?;
    Some(Parsed {
        stamp,
        vp8_keyframe,
    })
}

/// Parses an audio payload built by [`AudioSource`].
pub fn parse_opus(payload: &[u8]) -> Option<Parsed> {
    let stamp = Stamp::read(payload.get(1..)?)?;
    Some(Parsed {
        stamp,
        vp8_keyframe: None,
    })
}

/// One frame's worth of RTP payloads.
#[derive(Debug)]
pub struct Frame {
    /// The payloads, in order; the last one ends the frame (RTP marker).
    pub payloads: Vec<Bytes>,
    /// Whether it is a keyframe.
    pub keyframe: bool,
}

/// Generates VP8 frames at a target bitrate and frame rate.
#[derive(Debug)]
pub struct VideoSource {
    seq: u32,
    frame: u32,
    picture_id: u16,
    keyframe_bytes: usize,
    interframe_bytes: usize,
    frames_per_keyframe: u32,
    since_keyframe: u32,
}

impl VideoSource {
    /// A source of `bitrate` bits/s at `fps` frames/s, with a keyframe
    /// every `keyframe_every` frames (a keyframe is four times the average
    /// frame size; the interframes shrink so that the average holds).
    pub fn new(bitrate: u64, fps: u32, keyframe_every: u32) -> Self {
        let fps = u64::from(fps.max(1));
        let keyframe_every = keyframe_every.max(1);
        let average = usize::try_from(bitrate / 8 / fps).unwrap_or(usize::MAX);
        let keyframe_bytes = average.saturating_mul(4).max(200);
        let gop = usize::try_from(keyframe_every).unwrap_or(usize::MAX);
        let interframe_bytes = if gop > 1 {
            average
                .saturating_mul(gop)
                .saturating_sub(keyframe_bytes)
                .checked_div(gop - 1)
                .unwrap_or(average)
                .max(100)
        } else {
            keyframe_bytes
        };
        Self {
            seq: 0,
            frame: 0,
            picture_id: rand::random::<u16>() & 0x7fff,
            keyframe_bytes,
            interframe_bytes,
            frames_per_keyframe: keyframe_every,
            since_keyframe: 0,
        }
    }

    /// The next frame; a keyframe when one is due or `force_keyframe`.
    pub fn next_frame(&mut self, force_keyframe: bool, send_ns: u64) -> Frame {
        let keyframe =
            force_keyframe || self.frame == 0 || self.since_keyframe >= self.frames_per_keyframe;
        self.since_keyframe = if keyframe { 1 } else { self.since_keyframe + 1 };
        let size = if keyframe {
            self.keyframe_bytes
        } else {
            self.interframe_bytes
        };
        let header_len = if keyframe {
            VP8_KEYFRAME_HEADER_LEN
        } else {
            VP8_INTERFRAME_HEADER_LEN
        };
        // `size` is the whole RTP payload of the frame, overheads included.
        let per_packet = VP8_DESCRIPTOR_LEN + STAMP_LEN;
        let size = size.max(header_len + per_packet);
        let count = size.div_ceil(MAX_PAYLOAD);
        let mut left = size - header_len - count * per_packet;
        let count = u16::try_from(count).unwrap_or(u16::MAX);
        let mut payloads = Vec::with_capacity(usize::from(count));
        for index in 0..count {
            let mut out = BytesMut::with_capacity(MAX_PAYLOAD);
            let start = index == 0;
            out.put_u8(0x80 | if start { 0x10 } else { 0 });
            out.put_u8(0x80);
            out.put_u16(0x8000 | self.picture_id);
            if start {
                write_frame_header(&mut out, keyframe, size);
            }
            Stamp {
                seq: self.seq,
                send_ns,
                frame: self.frame,
                index,
                count,
                keyframe,
            }
            .write(&mut out);
            let fill = left.min(MAX_PAYLOAD - out.len());
            out.put_bytes(0xA5, fill);
            left -= fill;
            self.seq = self.seq.wrapping_add(1);
            payloads.push(out.freeze());
        }
        self.frame = self.frame.wrapping_add(1);
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        Frame { payloads, keyframe }
    }
}

/// The VP8 frame tag (and for keyframes, start code and picture size).
fn write_frame_header(out: &mut BytesMut, keyframe: bool, frame_size: usize) {
    // First partition size: a plausible share of the frame, 19 bits.
    let first_part = u32::try_from(frame_size / 4).unwrap_or(0).min(0x7_ffff);
    let show_frame = 1u32;
    let tag = (first_part << 5) | (show_frame << 4) | u32::from(!keyframe);
    out.put_slice(&tag.to_le_bytes()[..3]);
    if keyframe {
        out.put_slice(&[0x9d, 0x01, 0x2a]);
        out.put_u16_le(VIDEO_WIDTH);
        out.put_u16_le(VIDEO_HEIGHT);
    }
}

/// Generates Opus-sized audio packets, one per 20 ms.
#[derive(Debug, Default)]
pub struct AudioSource {
    seq: u32,
}

impl AudioSource {
    /// The next packet's payload.
    pub fn next_packet(&mut self, send_ns: u64) -> Bytes {
        let mut out = BytesMut::with_capacity(AUDIO_PAYLOAD_LEN);
        out.put_u8(OPUS_TOC);
        Stamp {
            seq: self.seq,
            send_ns,
            frame: self.seq,
            index: 0,
            count: 1,
            keyframe: false,
        }
        .write(&mut out);
        out.put_bytes(0x5A, AUDIO_PAYLOAD_LEN - out.len());
        self.seq = self.seq.wrapping_add(1);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let stamp = Stamp {
            seq: 0xdead_beef,
            send_ns: 1_700_000_000_123_456_789,
            frame: 42,
            index: 3,
            count: 7,
            keyframe: true,
        };
        let mut buf = BytesMut::new();
        stamp.write(&mut buf);
        assert_eq!(buf.len(), STAMP_LEN);
        assert_eq!(Stamp::read(&buf), Some(stamp));
        buf[0] = b'X';
        assert_eq!(Stamp::read(&buf), None, "wrong magic");
        assert_eq!(Stamp::read(&buf[..STAMP_LEN - 1]), None, "too short");
    }

    #[test]
    fn keyframe_is_valid_vp8_and_parses_back() {
        let mut source = VideoSource::new(1_000_000, 30, 60);
        let frame = source.next_frame(false, 77);
        assert!(frame.keyframe, "the first frame is a keyframe");
        assert!(frame.payloads.len() > 1, "a keyframe spans several packets");
        let first = &frame.payloads[0];
        // Descriptor: X and S set, partition 0; I set; 15-bit picture id.
        assert_eq!(first[0], 0x90);
        assert_eq!(first[1], 0x80);
        assert!(first[2] & 0x80 != 0);
        // Frame tag: keyframe bit clear, show_frame set; start code; 640x480.
        assert_eq!(first[4] & 0x01, 0);
        assert_eq!(first[4] & 0x10, 0x10);
        assert_eq!(&first[7..10], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([first[10], first[11]]), 640);
        assert_eq!(u16::from_le_bytes([first[12], first[13]]), 480);
        let count = u16::try_from(frame.payloads.len()).unwrap();
        for (i, payload) in frame.payloads.iter().enumerate() {
            assert!(payload.len() <= MAX_PAYLOAD);
            let parsed = parse_vp8(payload).expect("parses");
            assert_eq!(parsed.stamp.index, u16::try_from(i).unwrap());
            assert_eq!(parsed.stamp.count, count);
            assert_eq!(parsed.stamp.seq, u32::try_from(i).unwrap());
            assert_eq!(parsed.stamp.send_ns, 77);
            assert!(parsed.stamp.keyframe);
            assert_eq!(parsed.vp8_keyframe, (i == 0).then_some(true));
            if i > 0 {
                assert_eq!(payload[0], 0x80, "S clear on continuation packets");
            }
        }
    }

    #[test]
    fn interframes_and_forced_keyframes() {
        let mut source = VideoSource::new(800_000, 30, 3);
        let kinds: Vec<bool> = (0..7)
            .map(|_| source.next_frame(false, 0).keyframe)
            .collect();
        assert_eq!(kinds, [true, false, false, true, false, false, true]);
        let forced = source.next_frame(true, 0);
        assert!(forced.keyframe, "a PLI forces a keyframe");
        let inter = source.next_frame(false, 0);
        assert!(!inter.keyframe);
        let parsed = parse_vp8(&inter.payloads[0]).expect("parses");
        assert_eq!(parsed.vp8_keyframe, Some(false));
        assert_eq!(inter.payloads[0][4] & 0x01, 1, "interframe bit set");
    }

    #[test]
    fn video_averages_the_target_bitrate() {
        let (bitrate, fps) = (1_200_000u64, 30u32);
        let mut source = VideoSource::new(bitrate, fps, 60);
        let bytes: usize = (0..600)
            .flat_map(|_| source.next_frame(false, 0).payloads)
            .map(|p| p.len())
            .sum();
        let measured = bytes as f64 * 8.0 / 20.0; // 600 frames at 30 fps = 20 s
        let error = (measured - bitrate as f64).abs() / bitrate as f64;
        assert!(error < 0.1, "measured {measured} bit/s for {bitrate}");
    }

    #[test]
    fn audio_packets_are_opus_sized_and_counted() {
        let mut source = AudioSource::default();
        for seq in 0..3u32 {
            let payload = source.next_packet(u64::from(seq) * 20_000_000);
            assert_eq!(payload.len(), AUDIO_PAYLOAD_LEN);
            assert_eq!(payload[0], OPUS_TOC);
            let parsed = parse_opus(&payload).expect("parses");
            assert_eq!(parsed.stamp.seq, seq);
            assert_eq!(parsed.stamp.frame, seq);
            assert_eq!(parsed.stamp.send_ns, u64::from(seq) * 20_000_000);
        }
        assert_eq!(source.seq, 3);
    }

    #[test]
    fn foreign_payloads_are_rejected() {
        assert_eq!(parse_vp8(&[]), None);
        assert_eq!(parse_vp8(&[0x10, 0x00, 0x00, 0x00]), None);
        assert_eq!(parse_opus(&[0xf8, 1, 2, 3]), None);
    }

    #[test]
    fn now_ns_is_unix_time_and_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        assert!(a > 1_600_000_000_000_000_000, "after 2020");
    }
}
