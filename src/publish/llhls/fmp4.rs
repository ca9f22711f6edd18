//! Fragmented MP4 (CMAF) for an H.264 video track and, when the stream has sound, an AAC
//! track: the initialisation segment (`ftyp` + `moov`) and fragments (`moof` + `mdat`), one
//! per LL-HLS part. ISO/IEC 14496-12 boxes, the
//! few an fMP4 player reads.

/// The video's timescale: 90 kHz, as RTP and MPEG-TS (the audio's is its sample rate).
pub const TIMESCALE: u32 = 90_000;

/// One access unit of a fragment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// NAL units, each with a 4-byte big-endian length (AVCC), no parameter sets.
    pub data: Vec<u8>,
    /// Duration in its track's timescale.
    pub duration: u32,
    /// A key frame (IDR), or an audio frame: a player may start here.
    pub key: bool,
    /// Presentation minus decode time in its track's timescale (a camera's B-frames; 0 for
    /// sound and for video without reordering).
    pub cto: i32,
}

/// Writing big-endian integers and nested boxes into a byte vector.
trait Put {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
    fn zeros(&mut self, n: usize);
    /// A box: size, type, then what `body` writes.
    fn bx(&mut self, kind: &[u8; 4], body: impl FnOnce(&mut Self));
    /// A full box: a box starting with version and flags.
    fn full(&mut self, kind: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut Self));
}

impl Put for Vec<u8> {
    fn u8(&mut self, v: u8) {
        self.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0);
    }
    fn bx(&mut self, kind: &[u8; 4], body: impl FnOnce(&mut Self)) {
        let start = self.len();
        self.u32(0);
        self.extend_from_slice(kind);
        body(self);
        let size = (self.len() - start) as u32;
        self[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }
    fn full(&mut self, kind: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut Self)) {
        self.bx(kind, |b| {
            b.u32(u32::from(version) << 24 | flags);
            body(b);
        });
    }
}

/// The unity matrix of `mvhd` and `tkhd`.
fn matrix(b: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        b.u32(v);
    }
}

/// The AAC audio track of an initialisation segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// Samples per second: the track's timescale.
    pub rate: u32,
    /// Channels.
    pub channels: u32,
    /// The AudioSpecificConfig (the caps' `codec_data`).
    pub asc: Vec<u8>,
}

/// Track ids: the video, and the audio when there is some.
pub const VIDEO_TRACK: u32 = 1;
pub const AUDIO_TRACK: u32 = 2;

/// The initialisation segment for a video track of `width` x `height` with these parameter
/// sets (SPS and PPS NAL units without start codes), and an AAC track when `audio` is given.
pub fn init_segment(
    width: u32,
    height: u32,
    sps: &[u8],
    pps: &[u8],
    audio: Option<&AudioConfig>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(1024);
    b.bx(b"ftyp", |b| {
        b.extend_from_slice(b"iso6");
        b.u32(0);
        for brand in [b"iso6", b"cmfc", b"isom", b"mp41"] {
            b.extend_from_slice(brand);
        }
    });
    b.bx(b"moov", |b| {
        b.full(b"mvhd", 0, 0, |b| {
            b.u32(0); // creation time
            b.u32(0); // modification time
            b.u32(1000); // timescale
            b.u32(0); // duration: unknown (fragmented)
            b.u32(0x0001_0000); // rate 1.0
            b.u16(0x0100); // volume 1.0
            b.zeros(10);
            matrix(b);
            b.zeros(24); // pre_defined
            b.u32(if audio.is_some() { 3 } else { 2 }); // next track id
        });
        let video = Track {
            id: VIDEO_TRACK,
            timescale: TIMESCALE,
            size: (width, height),
        };
        video.trak(b, |b| avc1(b, width, height, sps, pps));
        if let Some(a) = audio {
            let track = Track {
                id: AUDIO_TRACK,
                timescale: a.rate,
                size: (0, 0),
            };
            track.trak(b, |b| mp4a(b, a));
        }
        b.bx(b"mvex", |b| {
            for id in std::iter::once(VIDEO_TRACK).chain(audio.map(|_| AUDIO_TRACK)) {
                b.full(b"trex", 0, 0, |b| {
                    b.u32(id);
                    b.u32(1); // sample description index
                    b.zeros(12); // default duration, size, flags: every fragment says its own
                });
            }
        });
    });
    b
}

/// A track of the initialisation segment: video when it has a size, else sound.
struct Track {
    id: u32,
    timescale: u32,
    size: (u32, u32),
}

impl Track {
    fn video(&self) -> bool {
        self.size != (0, 0)
    }

    /// Its `trak`, with the sample entry that `entry` writes.
    fn trak(&self, b: &mut Vec<u8>, entry: impl FnOnce(&mut Vec<u8>)) {
        b.bx(b"trak", |b| {
            b.full(b"tkhd", 0, 0x3, |b| {
                b.u32(0);
                b.u32(0);
                b.u32(self.id);
                b.u32(0);
                b.u32(0); // duration
                b.zeros(8);
                b.u16(0); // layer
                b.u16(0); // alternate group
                b.u16(if self.video() { 0 } else { 0x0100 }); // volume
                b.u16(0);
                matrix(b);
                b.u32(self.size.0 << 16);
                b.u32(self.size.1 << 16);
            });
            b.bx(b"mdia", |b| {
                b.full(b"mdhd", 0, 0, |b| {
                    b.u32(0);
                    b.u32(0);
                    b.u32(self.timescale);
                    b.u32(0);
                    b.u16(0x55c4); // language "und"
                    b.u16(0);
                });
                b.full(b"hdlr", 0, 0, |b| {
                    b.u32(0);
                    b.extend_from_slice(if self.video() { b"vide" } else { b"soun" });
                    b.zeros(12);
                    b.extend_from_slice(b"framegate\0");
                });
                b.bx(b"minf", |b| {
                    if self.video() {
                        b.full(b"vmhd", 0, 1, |b| b.zeros(8));
                    } else {
                        b.full(b"smhd", 0, 0, |b| b.zeros(4)); // balance, reserved
                    }
                    b.bx(b"dinf", |b| {
                        b.full(b"dref", 0, 0, |b| {
                            b.u32(1);
                            b.full(b"url ", 0, 1, |_| {}); // media in the same file
                        });
                    });
                    b.bx(b"stbl", |b| {
                        b.full(b"stsd", 0, 0, |b| {
                            b.u32(1);
                            entry(b);
                        });
                        // Empty sample tables: samples are in the fragments.
                        b.full(b"stts", 0, 0, |b| b.u32(0));
                        b.full(b"stsc", 0, 0, |b| b.u32(0));
                        b.full(b"stsz", 0, 0, |b| b.zeros(8));
                        b.full(b"stco", 0, 0, |b| b.u32(0));
                    });
                });
            });
        });
    }
}

/// The `mp4a` sample entry with its `esds` (ISO/IEC 14496-1 descriptors: the elementary
/// stream, its decoder configuration, the AudioSpecificConfig).
fn mp4a(b: &mut Vec<u8>, a: &AudioConfig) {
    /// A descriptor: tag, one-byte size (these are all small), body.
    fn descriptor(b: &mut Vec<u8>, tag: u8, body: &[u8]) {
        b.u8(tag);
        b.u8(body.len() as u8);
        b.extend_from_slice(body);
    }
    // The AudioSpecificConfig is a few bytes; one longer than a one-byte size would be
    // malformed, so it is cut (the packager takes none that long).
    let asc = &a.asc[..a.asc.len().min(64)];
    b.bx(b"mp4a", |b| {
        b.zeros(6);
        b.u16(1); // data reference index
        b.zeros(8); // reserved
        b.u16(a.channels.min(0xffff) as u16);
        b.u16(16); // sample size
        b.zeros(4); // pre_defined, reserved
        b.u32(a.rate.min(0xffff) << 16); // 16.16; rates above say theirs in the ASC
        b.full(b"esds", 0, 0, |b| {
            let mut config = vec![0x40, 0x15]; // MPEG-4 audio; audio stream, upstream 0, 1
            config.extend_from_slice(&[0, 0, 0]); // buffer size
            config.extend_from_slice(&[0; 8]); // max and average bit rates: unknown
            descriptor(&mut config, 0x05, asc);
            let mut es = vec![0, AUDIO_TRACK as u8, 0]; // ES_ID, flags
            descriptor(&mut es, 0x04, &config);
            descriptor(&mut es, 0x06, &[0x02]); // SL config: predefined for MP4
            descriptor(b, 0x03, &es);
        });
    });
}

/// The `avc1` sample entry with its `avcC` decoder configuration.
fn avc1(b: &mut Vec<u8>, width: u32, height: u32, sps: &[u8], pps: &[u8]) {
    b.bx(b"avc1", |b| {
        b.zeros(6);
        b.u16(1); // data reference index
        b.zeros(16); // pre_defined, reserved
        b.u16(width as u16);
        b.u16(height as u16);
        b.u32(0x0048_0000); // 72 dpi
        b.u32(0x0048_0000);
        b.u32(0);
        b.u16(1); // frames per sample
        b.zeros(32); // compressor name
        b.u16(0x0018); // depth
        b.u16(0xffff); // pre_defined = -1
        b.bx(b"avcC", |b| {
            b.u8(1); // configuration version
            b.u8(sps.get(1).copied().unwrap_or(66)); // profile
            b.u8(sps.get(2).copied().unwrap_or(0)); // constraint flags
            b.u8(sps.get(3).copied().unwrap_or(31)); // level
            b.u8(0xff); // 4-byte NAL lengths
            b.u8(0xe1); // one SPS
            b.u16(sps.len() as u16);
            b.extend_from_slice(sps);
            b.u8(1); // one PPS
            b.u16(pps.len() as u16);
            b.extend_from_slice(pps);
        });
    });
}

/// `trun` flags: data offset, and per sample its duration, size, flags and composition offset.
const TRUN_FLAGS: u32 = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800;
/// `tfhd` flag: offsets count from the start of the `moof`.
const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// Sample flags of a key frame (depends on no other sample) and of any other frame
/// (depends on others, not a sync sample).
const KEY_FLAGS: u32 = 0x0200_0000;
const DELTA_FLAGS: u32 = 0x0101_0000;

/// The samples of one track in a fragment, from decode time `base_time` (in the track's
/// timescale).
pub struct Run<'a> {
    /// Its track id.
    pub track: u32,
    /// Decode time of its first sample.
    pub base_time: u64,
    /// Its samples, back to back.
    pub samples: &'a [Sample],
}

/// One fragment: `moof` (sequence number `seq`, a `traf` per run) and one `mdat` holding the
/// runs' samples in order.
pub fn fragment(seq: u32, runs: &[Run]) -> Vec<u8> {
    let all = || runs.iter().flat_map(|r| r.samples);
    let payload: usize = all().map(|s| s.data.len()).sum();
    let mut b = Vec::with_capacity(payload + 100 * runs.len() + all().count() * 16);
    let mut offsets_at = Vec::with_capacity(runs.len());
    b.bx(b"moof", |b| {
        b.full(b"mfhd", 0, 0, |b| b.u32(seq));
        for run in runs {
            b.bx(b"traf", |b| {
                b.full(b"tfhd", 0, DEFAULT_BASE_IS_MOOF, |b| b.u32(run.track));
                b.full(b"tfdt", 1, 0, |b| b.u64(run.base_time));
                // Version 1: signed composition offsets.
                b.full(b"trun", 1, TRUN_FLAGS, |b| {
                    b.u32(run.samples.len() as u32);
                    offsets_at.push(b.len());
                    b.u32(0); // data offset, set below
                    for s in run.samples {
                        b.u32(s.duration);
                        b.u32(s.data.len() as u32);
                        b.u32(if s.key { KEY_FLAGS } else { DELTA_FLAGS });
                        b.u32(s.cto as u32);
                    }
                });
            });
        }
    });
    // Each run's bytes start where the previous run's end, the first right after the mdat
    // header.
    let mut data_offset = b.len() + 8;
    for (run, at) in runs.iter().zip(offsets_at) {
        b[at..at + 4].copy_from_slice(&(data_offset as u32).to_be_bytes());
        data_offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    b.u32((payload + 8) as u32);
    b.extend_from_slice(b"mdat");
    for s in all() {
        b.extend_from_slice(&s.data);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Top-level boxes of a buffer: (type, size).
    pub(crate) fn boxes(mut b: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        while b.len() >= 8 {
            let size = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
            out.push((String::from_utf8_lossy(&b[4..8]).into_owned(), size));
            assert!(
                size >= 8 && size <= b.len(),
                "box size {size} of {}",
                b.len()
            );
            b = &b[size..];
        }
        assert!(b.is_empty(), "trailing bytes");
        out
    }

    /// The data offset of the `n`th `trun` of a fragment.
    fn data_offset(f: &[u8], n: usize) -> usize {
        let pos = f
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"trun")
            .nth(n)
            .unwrap()
            .0;
        u32::from_be_bytes(f[pos + 12..pos + 16].try_into().unwrap()) as usize
    }

    #[test]
    fn boxes_nest_with_consistent_sizes() {
        let init = init_segment(640, 360, &[0x67, 0x42, 0xc0, 0x1e, 1, 2], &[0x68, 3], None);
        let top: Vec<_> = boxes(&init).into_iter().map(|(k, _)| k).collect();
        assert_eq!(top, ["ftyp", "moov"]);
        assert_eq!(init.windows(4).filter(|w| *w == b"trak").count(), 1);
        let samples = [
            Sample {
                data: vec![0, 0, 0, 2, 0x65, 1],
                duration: 3600,
                key: true,
                cto: 0,
            },
            Sample {
                data: vec![0, 0, 0, 1, 0x41],
                duration: 3600,
                key: false,
                cto: 0,
            },
        ];
        let run = Run {
            track: VIDEO_TRACK,
            base_time: 90_000,
            samples: &samples,
        };
        let f = fragment(7, &[run]);
        let top = boxes(&f);
        assert_eq!(top[0].0, "moof");
        assert_eq!(top[1], ("mdat".to_string(), 8 + 11));
        // The data offset points at the first sample.
        let offset = data_offset(&f, 0);
        assert_eq!(&f[offset..offset + 6], &samples[0].data[..]);
    }

    #[test]
    fn a_sound_track_gets_its_own_trak_and_traf() {
        let aac = AudioConfig {
            rate: 48_000,
            channels: 2,
            asc: vec![0x11, 0x90],
        };
        let init = init_segment(640, 360, &[0x67, 0x42, 0xc0, 0x1e], &[0x68, 3], Some(&aac));
        boxes(&init);
        assert_eq!(init.windows(4).filter(|w| *w == b"trak").count(), 2);
        assert_eq!(init.windows(4).filter(|w| *w == b"trex").count(), 2);
        for kind in [b"soun", b"smhd", b"mp4a", b"esds"] {
            assert!(init.windows(4).any(|w| w == kind), "{kind:?}");
        }
        // The decoder-specific info carries the AudioSpecificConfig.
        assert!(init.windows(4).any(|w| w == [0x05, 2, 0x11, 0x90]));
        let video = [Sample {
            data: vec![0, 0, 0, 2, 0x65, 1],
            duration: 3600,
            key: true,
            cto: 0,
        }];
        let audio = [
            Sample {
                data: vec![0xa1, 0xa2, 0xa3],
                duration: 1024,
                key: true,
                cto: 0,
            },
            Sample {
                data: vec![0xb1],
                duration: 1024,
                key: true,
                cto: 0,
            },
        ];
        let f = fragment(
            1,
            &[
                Run {
                    track: VIDEO_TRACK,
                    base_time: 0,
                    samples: &video,
                },
                Run {
                    track: AUDIO_TRACK,
                    base_time: 0,
                    samples: &audio,
                },
            ],
        );
        let top = boxes(&f);
        assert_eq!(top[1], ("mdat".to_string(), 8 + 6 + 4));
        let (v, a) = (data_offset(&f, 0), data_offset(&f, 1));
        assert_eq!(&f[v..v + 6], &video[0].data[..]);
        assert_eq!(&f[a..a + 4], &[0xa1, 0xa2, 0xa3, 0xb1]);
    }

    #[test]
    fn b_frames_carry_their_composition_offsets() {
        let samples = [
            Sample {
                data: vec![0, 0, 0, 2, 0x65, 1],
                duration: 3600,
                key: true,
                cto: 7200,
            },
            Sample {
                data: vec![0, 0, 0, 2, 0x41, 2],
                duration: 3600,
                key: false,
                cto: 0,
            },
        ];
        let f = fragment(
            1,
            &[Run {
                track: VIDEO_TRACK,
                base_time: 0,
                samples: &samples,
            }],
        );
        let pos = f.windows(4).position(|w| w == b"trun").unwrap();
        // Version 1 (signed offsets), flags with composition offsets.
        assert_eq!(f[pos + 4], 1);
        assert_eq!(
            u32::from_be_bytes(f[pos + 4..pos + 8].try_into().unwrap()) & 0x800,
            0x800
        );
        // Entries after count and data offset: duration, size, flags, offset.
        let entry = |i: usize, field: usize| {
            let at = pos + 16 + i * 16 + field * 4;
            u32::from_be_bytes(f[at..at + 4].try_into().unwrap())
        };
        assert_eq!((entry(0, 0), entry(0, 3)), (3600, 7200));
        assert_eq!((entry(1, 0), entry(1, 3)), (3600, 0));
    }
}
