//! One redaction for every secret. URLs lose their password, their RTMP stream key and the
//! values of query parameters with secret names; free text (error messages, log lines) loses
//! the URLs' secrets and every secret framegate was told about ([`register`]): the API token,
//! passwords, stream keys, TURN credentials, webhook secrets, watermark keys.
//!
//! The API, the logs (through [`Scrubbed`]), the metrics labels, the events and the error texts
//! all go through here, so a secret is hidden the same way everywhere. A client that writes a
//! redacted URL back (`***` where the secret was) keeps the stored value ([`restore_url`]).

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

use url::Url;

/// What a secret is replaced by.
pub const MASK: &str = "***";

/// Query parameter names whose values are secrets (compared case-insensitively).
const SECRET_PARAMS: &[&str] = &[
    "key",
    "token",
    "password",
    "pass",
    "passwd",
    "pwd",
    "secret",
    "sig",
    "signature",
    "auth",
    "apikey",
    "api_key",
    "access_token",
    "streamkey",
    "stream_key",
    "credential",
    "vt",
];

/// Secrets shorter than this are not scrubbed from free text (they would hide ordinary words);
/// URL secrets are masked by position whatever their length.
const MIN_SCRUBBED: usize = 4;
/// Most secrets remembered (a config with more is unusual; the oldest stay).
const MAX_SECRETS: usize = 4096;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
/// Set once the registry is full.
static FULL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Remembers a secret so that it is scrubbed from every text from now on.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SCRUBBED || secret == MASK {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if all.len() >= MAX_SECRETS {
        // Once: past this, URL secrets are still masked by position, others no longer.
        if !FULL.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "framegate: more than {MAX_SECRETS} secrets; later ones are not scrubbed from free text"
            );
        }
        return;
    }
    if !all.iter().any(|s| s == secret) {
        all.push(secret.to_string());
        // Longest first, so a secret that contains another is replaced whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Remembers the secrets of a URL: its password, its RTMP stream key, its secret query values.
pub fn register_url(u: &Url) {
    for s in url_secrets(u) {
        register(&s);
    }
}

fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

fn is_rtmp(u: &Url) -> bool {
    matches!(u.scheme(), "rtmp" | "rtmps" | "rtmpt")
}

/// The secrets a URL carries.
fn url_secrets(u: &Url) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = u.password() {
        out.push(p.to_string());
        // As it is written in the URL, and as it is sent (GStreamer's errors may show either).
        if let Ok(d) = percent_encoding::percent_decode_str(p).decode_utf8() {
            out.push(d.into_owned());
        }
    }
    if is_rtmp(u) {
        let segments: Vec<&str> = u.path().trim_start_matches('/').splitn(2, '/').collect();
        if let [_, key] = segments.as_slice()
            && !key.is_empty()
        {
            out.push((*key).to_string());
        }
    }
    for (k, v) in u.query_pairs() {
        if is_secret_param(&k) && !v.is_empty() {
            out.push(v.into_owned());
        }
    }
    out
}

/// A copy of `u` without its secrets: the password, the RTMP stream key (everything after the
/// application, `rtmp://host/app/***`) and the values of secret query parameters become `***`.
pub fn url(u: &Url) -> Url {
    let mut r = u.clone();
    if r.password().is_some() {
        // Only fails on URLs that cannot have a password, which this one has.
        let _ = r.set_password(Some(MASK));
    }
    if is_rtmp(&r) {
        let path = r.path().trim_start_matches('/').to_string();
        if let Some((app, key)) = path.split_once('/')
            && !key.is_empty()
        {
            r.set_path(&format!("/{app}/{MASK}"));
        }
    }
    if r.query_pairs()
        .any(|(k, v)| is_secret_param(&k) && !v.is_empty())
    {
        let pairs: Vec<(String, String)> = r
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) && !v.is_empty() {
                    MASK.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        r.set_query(Some(&query));
    }
    r
}

/// [`url`], as text.
pub fn url_text(u: &Url) -> String {
    url(u).to_string()
}

/// Where `new` is the redacted form of `old` (a client read a config and wrote it back), puts
/// `old`'s secrets back; a URL that differs elsewhere, or carries no `***`, stays as given.
pub fn restore_url(new: &mut Url, old: &Url) {
    if new.as_str().contains(MASK) && *new == url(old) {
        *new = old.clone();
    }
}

/// Free text without secrets: every URL in it redacted ([`url`]) and every registered secret
/// replaced by `***`.
pub fn text(s: &str) -> Cow<'_, str> {
    let mut out: Cow<'_, str> = Cow::Borrowed(s);
    if s.contains("://") {
        out = Cow::Owned(scrub_urls(s));
    }
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// Redacts each `scheme://...` run of the text (up to whitespace, a quote or a bracket).
fn scrub_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters, digits, `+`, `-`, `.` before `://`.
        let start = rest[..at]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')'))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        let candidate = &rest[start..end];
        match Url::parse(candidate) {
            Ok(u) if start < at => out.push_str(&url_text_like(&u, candidate)),
            _ => out.push_str(&mask_credentials(candidate)),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The redacted URL, keeping the original text when nothing in it was secret (the parser would
/// otherwise normalise it, adding a `/` for example).
fn url_text_like(u: &Url, original: &str) -> String {
    let r = url(u);
    if r == *u {
        original.to_string()
    } else {
        r.to_string()
    }
}

/// `scheme://user:pass@rest` → `scheme://user:***@rest`, for text that is not a valid URL.
fn mask_credentials(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let creds = &s[start + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}:{MASK}{}", &s[..start + 3 + colon], &s[at..]),
                None => s.to_string(),
            }
        }
        _ => s.to_string(),
    }
}

/// A log writer that scrubs what it writes ([`text`]): the one exit of framegate's log lines.
pub struct Scrubbed<W>(pub W);

impl<W: Write> Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = String::from_utf8_lossy(buf);
        self.0.write_all(text(&s).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Makes [`Scrubbed`] standard-error writers for the log subscriber.
pub fn stderr() -> Scrubbed<std::io::Stderr> {
    Scrubbed(std::io::stderr())
}

/// Whether `given` is `secret`, compared in time that depends only on the secret's length, so
/// that timing reveals neither where the first difference is nor the secret's length.
pub fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != secret.len());
    for (i, y) in secret.iter().enumerate() {
        let x = given.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_compared_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }

    fn u(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    #[test]
    fn urls_lose_passwords_stream_keys_and_secret_query_values() {
        assert_eq!(
            url_text(&u("rtsp://admin:hunter2@cam/live")),
            "rtsp://admin:***@cam/live"
        );
        assert_eq!(
            url_text(&u("rtmp://ingest.example/live/sk_live_abc123")),
            "rtmp://ingest.example/live/***"
        );
        assert_eq!(
            url_text(&u("rtmp://ingest.example/live")),
            "rtmp://ingest.example/live"
        );
        assert_eq!(
            url_text(&u("http://h/api?path=x&Token=abc&password=p%40ss")),
            "http://h/api?path=x&Token=***&password=***"
        );
        assert_eq!(url_text(&u("rtsp://cam/live")), "rtsp://cam/live");
    }

    #[test]
    fn a_redacted_url_written_back_keeps_the_secret() {
        let old = u("rtmp://u:pw@ingest/live/key1?sig=s1");
        let mut back = url(&old);
        restore_url(&mut back, &old);
        assert_eq!(back, old);
        // Another host: the `***` is taken as given, never the old secret.
        let mut moved = u("rtmp://u:***@elsewhere/live/***");
        restore_url(&mut moved, &old);
        assert_eq!(moved.host_str(), Some("elsewhere"));
        assert_eq!(moved.password(), Some(MASK));
        // A new secret replaces the old one.
        let mut fresh = u("rtmp://u:new@ingest/live/key2");
        restore_url(&mut fresh, &old);
        assert_eq!(fresh.password(), Some("new"));
    }

    #[test]
    fn free_text_loses_url_secrets_and_registered_ones() {
        register("correct-horse-battery");
        let t = text(
            "could not connect to rtmp://a:b@host/app/streamkey42 (token correct-horse-battery)",
        );
        assert_eq!(
            t,
            "could not connect to rtmp://a:***@host/app/*** (token ***)"
        );
        assert_eq!(text("nothing secret here"), "nothing secret here");
        // Text that is not a valid URL still loses its credentials.
        assert_eq!(text("at rtsp://u:p@[bad"), "at rtsp://u:***@[bad");
        // Text around a URL need not be ASCII (found by the fuzzer).
        assert_eq!(text("é rtsp://u:p@h/x"), "é rtsp://u:***@h/x");
        // Short words are never taken for secrets.
        register("ab");
        assert_eq!(text("a cab"), "a cab");
    }

    #[test]
    fn a_percent_encoded_password_is_scrubbed_in_both_forms() {
        register_url(&u("rtsp://cam:Pa%2Bss+w0rd%21@h/x"));
        assert_eq!(text("sent Pa+ss+w0rd! to h"), "sent *** to h");
        assert_eq!(text("url had Pa%2Bss+w0rd%21"), "url had ***");
    }

    #[test]
    fn the_log_writer_scrubs() {
        register("s3cr3t-webhook");
        let mut w = Scrubbed(Vec::new());
        w.write_all(b"delivering with s3cr3t-webhook to rtsp://x:y@h/p\n")
            .expect("write");
        assert_eq!(
            String::from_utf8(w.0).expect("utf8"),
            "delivering with *** to rtsp://x:***@h/p\n"
        );
    }
}
