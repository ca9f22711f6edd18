//! The LL-HLS media playlist (RFC 8216bis): segments with their parts for the newest few,
//! the part being built as a preload hint, blocking reload offered.

use std::fmt::Write;

use super::packager::Packager;

/// Parts are listed for segments within this many target durations of the playlist's end.
const PART_WINDOW_TARGETS: f64 = 3.0;

/// The playlist, or `None` before the first part.
pub fn render(p: &Packager) -> Option<String> {
    let segments = p.segments();
    let first = segments.front()?;
    if segments.len() == 1 && first.parts.is_empty() {
        return None;
    }
    let (next_msn, next_part) = p.next_part()?;
    let target = p.target_duration();
    let part_target = p.part_target();
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-PART-INF:PART-TARGET={part_target:.3}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}\n\
         #EXT-X-MEDIA-SEQUENCE:{}\n",
        3.0 * part_target,
        first.msn,
    );
    // After a start over (new parameter sets or sound) the older segments are gone: the
    // discontinuities before the first listed segment are the restarts.
    if p.restarts > 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", p.restarts);
    }
    let _ = writeln!(
        out,
        "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"{}\"",
        p.init_name()
    );
    // Where the parts start being listed: from the end back over three target durations.
    let mut from_end = 0.0;
    let mut parts_from = segments.len();
    for (i, s) in segments.iter().enumerate().rev() {
        if from_end > PART_WINDOW_TARGETS * target as f64 {
            break;
        }
        parts_from = i;
        from_end += s.duration();
    }
    for (i, s) in segments.iter().enumerate() {
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            crate::process::utc_timestamp(s.start).replacen(' ', "T", 1) + "Z"
        );
        if i >= parts_from {
            for (n, part) in s.parts.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "#EXT-X-PART:DURATION={:.5},URI=\"part{}.{n}.m4s\"{}",
                    part.duration,
                    s.msn,
                    if part.independent {
                        ",INDEPENDENT=YES"
                    } else {
                        ""
                    }
                );
            }
        }
        if s.body.is_some() {
            let _ = writeln!(out, "#EXTINF:{:.5},\nseg{}.m4s", s.duration(), s.msn);
        }
    }
    let _ = writeln!(
        out,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part{next_msn}.{next_part}.m4s\""
    );
    Some(out)
}

/// The playlist with `query` (`vt=...`) added to every URI in it (tags' `URI="..."` and media
/// lines), so that a player that got the playlist with a viewer token fetches the rest with it.
/// Also for the MPEG-TS HLS playlist.
pub fn with_query(text: &str, query: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64 * query.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let end = &line[body.len()..];
        if body.is_empty() {
            out.push_str(line);
        } else if body.starts_with('#') {
            let mut rest = body;
            while let Some(at) = rest.find("URI=\"") {
                let start = at + 5;
                let Some(close) = rest[start..].find('"') else {
                    break;
                };
                let uri = &rest[start..start + close];
                out.push_str(&rest[..start]);
                out.push_str(uri);
                out.push(if uri.contains('?') { '&' } else { '?' });
                out.push_str(query);
                rest = &rest[start + close..];
            }
            out.push_str(rest);
            out.push_str(end);
        } else {
            out.push_str(body);
            out.push(if body.contains('?') { '&' } else { '?' });
            out.push_str(query);
            out.push_str(end);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packager(frames: u64) -> Packager {
        let mut p = Packager::new(25, false);
        for i in 0..frames {
            let key = i % 25 == 0;
            let au: &[u8] = if key {
                &[0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 1]
            } else {
                &[0, 0, 1, 0x41, 2]
            };
            p.push(Some(i * 40_000_000), 0, key, au, (640, 360), Some(25.0));
        }
        p
    }

    #[test]
    fn lists_segments_recent_parts_and_the_preload_hint() {
        assert!(render(&packager(0)).is_none());
        assert!(render(&packager(3)).is_none(), "no part yet");
        let text = render(&packager(25 * 8 + 7)).unwrap();
        assert!(text.starts_with("#EXTM3U\n"));
        assert!(text.contains("#EXT-X-TARGETDURATION:1\n"));
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.200\n"));
        assert!(text.contains("CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600"));
        // Six complete segments kept: 2..=7; 8 in progress with one part.
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n"));
        assert!(text.contains("#EXTINF:1.00000,\nseg7.m4s\n"));
        assert!(!text.contains("seg8.m4s"));
        assert!(
            text.contains("#EXT-X-PART:DURATION=0.20000,URI=\"part8.0.m4s\",INDEPENDENT=YES\n")
        );
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part8.1.m4s\"\n"));
        let signed = with_query(&text, "vt=abc");
        assert!(signed.contains("#EXT-X-MAP:URI=\"init.mp4?vt=abc\"\n"));
        assert!(signed.ends_with("URI=\"part8.1.m4s?vt=abc\"\n"));
        assert!(signed.contains("\nseg7.m4s?vt=abc\n"), "{signed}");
        assert_eq!(
            with_query("#EXTM3U\nsegment00001.ts\n", "vt=x"),
            "#EXTM3U\nsegment00001.ts?vt=x\n"
        );
        // Parts only for the newest segments (three target durations).
        assert!(text.contains("part5.0.m4s") && !text.contains("part3.0.m4s"));
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 7);
    }
}
