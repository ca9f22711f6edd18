//! Fragmented MP4 (CMAF) for one H.264 video track: the initialisation segment (`ftyp` +
//! `moov`) and fragments (`moof` + `mdat`), one per LL-HLS part. ISO/IEC 14496-12 boxes, the
//! few an fMP4 player reads.

/// Media timescale: 90 kHz, as RTP and MPEG-TS.
pub const TIMESCALE: u32 = 90_000;

/// One access unit of a fragment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// NAL units, each with a 4-byte big-endian length (AVCC), no parameter sets.
    pub data: Vec<u8>,
    /// Duration in [`TIMESCALE`] ticks.
    pub duration: u32,
    /// A key frame (IDR): a player may start here.
    pub key: bool,
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

/// The initialisation segment for a track of `width` x `height` with these parameter sets
/// (SPS and PPS NAL units without start codes).
pub fn init_segment(width: u32, height: u32, sps: &[u8], pps: &[u8]) -> Vec<u8> {
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
            b.u32(2); // next track id
        });
        b.bx(b"trak", |b| {
            b.full(b"tkhd", 0, 0x3, |b| {
                b.u32(0);
                b.u32(0);
                b.u32(1); // track id
                b.u32(0);
                b.u32(0); // duration
                b.zeros(8);
                b.u16(0); // layer
                b.u16(0); // alternate group
                b.u16(0); // volume (video)
                b.u16(0);
                matrix(b);
                b.u32(width << 16);
                b.u32(height << 16);
            });
            b.bx(b"mdia", |b| {
                b.full(b"mdhd", 0, 0, |b| {
                    b.u32(0);
                    b.u32(0);
                    b.u32(TIMESCALE);
                    b.u32(0);
                    b.u16(0x55c4); // language "und"
                    b.u16(0);
                });
                b.full(b"hdlr", 0, 0, |b| {
                    b.u32(0);
                    b.extend_from_slice(b"vide");
                    b.zeros(12);
                    b.extend_from_slice(b"framegate\0");
                });
                b.bx(b"minf", |b| {
                    b.full(b"vmhd", 0, 1, |b| b.zeros(8));
                    b.bx(b"dinf", |b| {
                        b.full(b"dref", 0, 0, |b| {
                            b.u32(1);
                            b.full(b"url ", 0, 1, |_| {}); // media in the same file
                        });
                    });
                    b.bx(b"stbl", |b| {
                        b.full(b"stsd", 0, 0, |b| {
                            b.u32(1);
                            avc1(b, width, height, sps, pps);
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
        b.bx(b"mvex", |b| {
            b.full(b"trex", 0, 0, |b| {
                b.u32(1); // track id
                b.u32(1); // sample description index
                b.zeros(12); // default duration, size, flags: every fragment says its own
            });
        });
    });
    b
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

/// `trun` flags: data offset, and per sample its duration, size and flags.
const TRUN_FLAGS: u32 = 0x000001 | 0x000100 | 0x000200 | 0x000400;
/// `tfhd` flag: offsets count from the start of the `moof`.
const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// Sample flags of a key frame (depends on no other sample) and of any other frame
/// (depends on others, not a sync sample).
const KEY_FLAGS: u32 = 0x0200_0000;
const DELTA_FLAGS: u32 = 0x0101_0000;

/// One fragment: `moof` (sequence number `seq`, decode time `base_time` in [`TIMESCALE`]
/// ticks) and the `mdat` with the samples.
pub fn fragment(seq: u32, base_time: u64, samples: &[Sample]) -> Vec<u8> {
    let payload: usize = samples.iter().map(|s| s.data.len()).sum();
    let mut b = Vec::with_capacity(payload + 100 + samples.len() * 12);
    let mut offset_at = 0;
    b.bx(b"moof", |b| {
        b.full(b"mfhd", 0, 0, |b| b.u32(seq));
        b.bx(b"traf", |b| {
            b.full(b"tfhd", 0, DEFAULT_BASE_IS_MOOF, |b| b.u32(1));
            b.full(b"tfdt", 1, 0, |b| b.u64(base_time));
            b.full(b"trun", 0, TRUN_FLAGS, |b| {
                b.u32(samples.len() as u32);
                offset_at = b.len();
                b.u32(0); // data offset, set below
                for s in samples {
                    b.u32(s.duration);
                    b.u32(s.data.len() as u32);
                    b.u32(if s.key { KEY_FLAGS } else { DELTA_FLAGS });
                }
            });
        });
    });
    // The first sample's bytes start right after the mdat header.
    let data_offset = (b.len() + 8) as u32;
    b[offset_at..offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    b.u32((payload + 8) as u32);
    b.extend_from_slice(b"mdat");
    for s in samples {
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

    #[test]
    fn boxes_nest_with_consistent_sizes() {
        let init = init_segment(640, 360, &[0x67, 0x42, 0xc0, 0x1e, 1, 2], &[0x68, 3]);
        let top: Vec<_> = boxes(&init).into_iter().map(|(k, _)| k).collect();
        assert_eq!(top, ["ftyp", "moov"]);
        let samples = [
            Sample {
                data: vec![0, 0, 0, 2, 0x65, 1],
                duration: 3600,
                key: true,
            },
            Sample {
                data: vec![0, 0, 0, 1, 0x41],
                duration: 3600,
                key: false,
            },
        ];
        let f = fragment(7, 90_000, &samples);
        let top = boxes(&f);
        assert_eq!(top[0].0, "moof");
        assert_eq!(top[1], ("mdat".to_string(), 8 + 11));
        // The data offset points at the first sample.
        let moof = &f[..top[0].1];
        let pos = moof.windows(4).position(|w| w == b"trun").unwrap();
        let offset = u32::from_be_bytes(moof[pos + 12..pos + 16].try_into().unwrap()) as usize;
        assert_eq!(&f[offset..offset + 6], &samples[0].data[..]);
    }
}
