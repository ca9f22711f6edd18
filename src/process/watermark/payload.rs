//! The payload: a 7-character ASCII ID as 49 bits (7 bits a character) and a CRC-16 over them,
//! 65 bits in all. The CRC is the error-detecting part: a window whose bits do not check out
//! reports nothing.

/// Bits carried by every frame.
pub const BITS: usize = 65;
const DATA: usize = 49;

/// The bits of an ID (exactly 7 printable ASCII characters; see
/// [`crate::config::watermark_id_error`]).
pub fn encode(id: &str) -> [bool; BITS] {
    let mut bits = [false; BITS];
    for (i, b) in id.bytes().take(7).enumerate() {
        for k in 0..7 {
            bits[i * 7 + k] = (b >> (6 - k)) & 1 == 1;
        }
    }
    let crc = crc16(&bits[..DATA]);
    for k in 0..16 {
        bits[DATA + k] = (crc >> (15 - k)) & 1 == 1;
    }
    bits
}

/// The ID in a set of bits, if their CRC checks out and every character is printable.
pub fn decode(bits: &[bool; BITS]) -> Option<String> {
    let crc = bits[DATA..]
        .iter()
        .fold(0u16, |acc, b| (acc << 1) | u16::from(*b));
    if crc != crc16(&bits[..DATA]) {
        return None;
    }
    let id: Vec<u8> = bits[..DATA]
        .chunks(7)
        .map(|c| c.iter().fold(0u8, |acc, b| (acc << 1) | u8::from(*b)))
        .collect();
    id.iter()
        .all(|b| (0x20..0x7f).contains(b))
        .then(|| String::from_utf8_lossy(&id).into_owned())
}

/// CRC-16/CCITT-FALSE over a bit string.
fn crc16(bits: &[bool]) -> u16 {
    let mut crc = 0xffffu16;
    for &b in bits {
        let top = (crc >> 15) & 1 == 1;
        crc <<= 1;
        if top != b {
            crc ^= 0x1021;
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_any_single_error_is_caught() {
        let bits = encode("CAM0042");
        assert_eq!(decode(&bits).as_deref(), Some("CAM0042"));
        for i in 0..BITS {
            let mut b = bits;
            b[i] = !b[i];
            assert_eq!(decode(&b), None, "a flip of bit {i} went unnoticed");
        }
        assert_ne!(encode("CAM0043"), bits);
    }
}
