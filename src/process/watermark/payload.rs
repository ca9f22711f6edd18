//! The payload: a 7-character ASCII ID as 49 bits (7 bits a character) and a CRC-16 over them,
//! 65 bits, protected by a convolutional code (rate 1/2, constraint length 9, generators 561
//! and 753 octal, closed by 8 zero bits): 146 coded bits, which the layout spreads over the
//! frame. The reader decodes soft: a Viterbi search for the codeword that agrees best with the
//! z-scores of the coded bits (weak bits count for little, strong ones for much), then the CRC
//! checks what it found. At the same mark energy this reads windows that deciding each bit on
//! its own (and flipping the weakest) loses: about 3 dB.

/// Coded bits carried by every frame.
pub const BITS: usize = 2 * (INFO + MEMORY);
/// ID bits.
const DATA: usize = 49;
/// ID and CRC bits.
const INFO: usize = DATA + 16;
/// The code's memory (constraint length less one): zero bits that close the code.
const MEMORY: usize = 8;
/// The code's generators (561 and 753 octal, the usual pair for constraint length 9).
const GENERATORS: [u32; 2] = [0o561, 0o753];
const STATES: usize = 1 << MEMORY;

/// The coded bits of an ID (exactly 7 printable ASCII characters; see
/// [`crate::config::watermark_id_error`]).
pub fn encode(id: &str) -> [bool; BITS] {
    let mut info = [false; INFO];
    for (i, b) in id.bytes().take(7).enumerate() {
        for k in 0..7 {
            info[i * 7 + k] = (b >> (6 - k)) & 1 == 1;
        }
    }
    let crc = crc16(&info[..DATA]);
    for k in 0..16 {
        info[DATA + k] = (crc >> (15 - k)) & 1 == 1;
    }
    encode_info(&info)
}

/// The encoder's move from `state` on `bit`: the next state and the two coded bits.
fn step(state: usize, bit: bool) -> (usize, [bool; 2]) {
    let register = (usize::from(bit) << MEMORY) | state;
    let out = GENERATORS.map(|g| (register as u32 & g).count_ones() % 2 == 1);
    (register >> 1, out)
}

/// What the soft decoder found.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The ID, when the CRC checks out and every character is printable.
    pub id: Option<String>,
    /// The mean agreement of the z-scores with the codeword found (z x its sign): about 0.65
    /// on noise (the best of many codewords), the mean z of the mark when it is there.
    pub agreement: f32,
    /// Coded bits whose own sign disagreed with the codeword: the errors the code corrected.
    pub corrected: usize,
}

/// Decodes the z-scores of the coded bits (positive: a 1 more likely).
pub fn decode(z: &[f32; BITS]) -> Decoded {
    let steps = INFO + MEMORY;
    let mut metric = [f32::NEG_INFINITY; STATES];
    metric[0] = 0.0;
    // Per step and state reached: the state it came from and the bit taken.
    let mut from = vec![[(0u16, false); STATES]; steps];
    for t in 0..steps {
        let mut next = [f32::NEG_INFINITY; STATES];
        let bits: &[bool] = if t < INFO { &[false, true] } else { &[false] };
        for (state, m) in metric.iter().enumerate() {
            if m.is_infinite() {
                continue;
            }
            for &bit in bits {
                let (to, out) = step(state, bit);
                let gain = signed(z[2 * t], out[0]) + signed(z[2 * t + 1], out[1]);
                if m + gain > next[to] {
                    next[to] = m + gain;
                    from[t][to] = (state as u16, bit);
                }
            }
        }
        metric = next;
    }
    // The code ends in state 0: trace back from there.
    let mut info = [false; INFO];
    let mut state = 0usize;
    for t in (0..steps).rev() {
        let (prev, bit) = from[t][state];
        if t < INFO {
            info[t] = bit;
        }
        state = prev as usize;
    }
    let id = check(&info);
    let coded = encode_info(&info);
    let corrected = coded
        .iter()
        .zip(z)
        .filter(|(c, v)| **c != (**v > 0.0))
        .count();
    Decoded {
        id,
        agreement: metric[0] / BITS as f32,
        corrected,
    }
}

fn signed(z: f32, bit: bool) -> f32 {
    if bit { z } else { -z }
}

/// The coded bits of any info bits (those of a decoded path).
fn encode_info(info: &[bool; INFO]) -> [bool; BITS] {
    let mut coded = [false; BITS];
    let mut state = 0usize;
    for (t, bit) in info.iter().chain(&[false; MEMORY]).enumerate() {
        let (next, out) = step(state, *bit);
        coded[2 * t..2 * t + 2].copy_from_slice(&out);
        state = next;
    }
    coded
}

/// The ID in info bits, if their CRC checks out and every character is printable.
fn check(info: &[bool; INFO]) -> Option<String> {
    let crc = info[DATA..]
        .iter()
        .fold(0u16, |acc, b| (acc << 1) | u16::from(*b));
    if crc != crc16(&info[..DATA]) {
        return None;
    }
    let id: Vec<u8> = info[..DATA]
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
    use rand::{Rng, SeedableRng};

    /// Z-scores of a codeword with mean `mu` and unit Gaussian noise.
    fn noisy(coded: &[bool; BITS], mu: f32, rng: &mut impl Rng) -> [f32; BITS] {
        let mut z = [0f32; BITS];
        for (v, c) in z.iter_mut().zip(coded) {
            // Box-Muller.
            let (a, b): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
            let n = (-2.0 * a.ln()).sqrt() * (std::f32::consts::TAU * b).cos();
            *v = signed(mu, *c) + n;
        }
        z
    }

    #[test]
    fn round_trip_and_errors_are_corrected_or_refused() {
        let coded = encode("CAM0042");
        let z = coded.map(|c| signed(3.0, c));
        let d = decode(&z);
        assert_eq!((d.id.as_deref(), d.corrected), (Some("CAM0042"), 0));
        assert!((d.agreement - 3.0).abs() < 1e-4, "{d:?}");
        assert_ne!(encode("CAM0043"), coded);

        // Noisy marks whose bits, decided one by one, are often wrong: read anyway.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut read = 0;
        let mut corrected = 0;
        for _ in 0..100 {
            let d = decode(&noisy(&coded, 1.4, &mut rng));
            read += usize::from(d.id.as_deref() == Some("CAM0042"));
            corrected += d.corrected;
        }
        assert!(read >= 98, "read {read} of 100");
        assert!(corrected > 100 * BITS / 15, "{corrected} bits corrected");

        // Noise: the best codeword agrees far less than a mark does, and is no ID.
        let mut worst = 0f32;
        for _ in 0..200 {
            let z: [f32; BITS] = noisy(&coded, 0.0, &mut rng);
            let d = decode(&z);
            assert!(d.id.is_none() || d.agreement < 0.9, "{d:?}");
            worst = worst.max(d.agreement);
        }
        assert!(
            (0.5..0.85).contains(&worst),
            "noise agreement up to {worst}"
        );
    }
}
