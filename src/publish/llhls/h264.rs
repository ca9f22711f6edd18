//! H.264 access units from Annex B (start codes, as the encoders give them) to the
//! length-prefixed form of MP4, with the parameter sets taken aside for the `avcC`.

/// NAL unit types this module treats specially.
const SPS: u8 = 7;
const PPS: u8 = 8;
const AUD: u8 = 9;

/// An access unit ready for an MP4 sample.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AccessUnit {
    /// The sequence parameter set, when the access unit carries one.
    pub sps: Option<Vec<u8>>,
    /// The picture parameter set, when the access unit carries one.
    pub pps: Option<Vec<u8>>,
    /// The other NAL units, each after a 4-byte big-endian length.
    pub avcc: Vec<u8>,
}

/// The NAL units of an Annex B byte stream (without their start codes).
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| s - 3)
        .chain(std::iter::once(data.len()))
        .collect();
    starts.into_iter().zip(ends).filter_map(move |(s, e)| {
        // A four-byte start code leaves a zero at the end of the unit before it; trailing
        // zero bytes are never part of a NAL unit.
        let mut e = e;
        while e > s && data[e - 1] == 0 {
            e -= 1;
        }
        (e > s).then(|| &data[s..e])
    })
}

/// Splits an Annex B access unit: parameter sets aside, delimiters dropped, the rest
/// length-prefixed.
pub fn to_mp4(data: &[u8]) -> AccessUnit {
    let mut au = AccessUnit {
        avcc: Vec::with_capacity(data.len() + 16),
        ..AccessUnit::default()
    };
    for nal in nal_units(data) {
        match nal[0] & 0x1f {
            SPS => au.sps = Some(nal.to_vec()),
            PPS => au.pps = Some(nal.to_vec()),
            AUD => {}
            _ => {
                au.avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                au.avcc.extend_from_slice(nal);
            }
        }
    }
    au
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_start_codes_of_both_lengths() {
        let data = [
            0, 0, 0, 1, 0x09, 0xf0, // AUD
            0, 0, 0, 1, 0x67, 0x42, 0, // SPS (ends in a zero: trailing zeros go)
            0, 0, 1, 0x68, 0xce, // PPS
            0, 0, 1, 0x65, 0x88, 0x84, // IDR slice
        ];
        let au = to_mp4(&data);
        assert_eq!(au.sps.as_deref(), Some(&[0x67, 0x42][..]));
        assert_eq!(au.pps.as_deref(), Some(&[0x68, 0xce][..]));
        assert_eq!(au.avcc, [0, 0, 0, 3, 0x65, 0x88, 0x84]);
        assert_eq!(to_mp4(&[]), AccessUnit::default());
    }
}
