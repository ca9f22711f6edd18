//! Webhook delivery: a JSON `POST`, signed with HMAC-SHA256 when the rule has a secret.

use std::time::Duration;

use anyhow::{Result, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::WebhookTarget;
use crate::store::Delivery;

/// The header with the alert's id (the same on every retry).
pub const ID_HEADER: &str = "X-Framegate-Alert-Id";
/// The header with `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Framegate-Signature";

/// `sha256=<hex>` for `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Posts the alert; any answer but 2xx is a failure.
pub async fn post(client: &reqwest::Client, target: &WebhookTarget, d: &Delivery) -> Result<()> {
    let mut request = client
        .post(target.url.clone())
        .timeout(Duration::from_secs_f64(target.timeout_s))
        .header("Content-Type", "application/json")
        .header(ID_HEADER, &d.event_uid)
        .body(d.payload.clone());
    if let Some(secret) = &target.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, d.payload.as_bytes()));
    }
    let answer = request.send().await.map_err(|e| {
        // reqwest's message hides the cause (connection refused, timeout) in its source.
        let mut m = e.to_string();
        let mut s = std::error::Error::source(&e);
        while let Some(cause) = s {
            m.push_str(&format!(": {cause}"));
            s = cause.source();
        }
        anyhow::anyhow!(m)
    })?;
    if !answer.status().is_success() {
        bail!("webhook answered {}", answer.status());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
