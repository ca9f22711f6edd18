//! `[server.webrtc]`: how WebRTC (WHEP) viewers reach framegate: the addresses ICE offers,
//! STUN and TURN servers for viewers across NATs, and the UDP ports media may use.

use std::net::{IpAddr, SocketAddr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// ICE settings of the WebRTC viewers.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebRtcConfig {
    /// Addresses ICE gathers host candidates on (media is sent from these only). Empty: the
    /// address of `server.http` when it is a specific one (loopback by default), every
    /// interface's when it is `0.0.0.0` or `::`.
    #[serde(default)]
    pub ice_addresses: Vec<IpAddr>,
    /// STUN server, `stun://host:port`: framegate learns its public address from it and offers
    /// it too, for viewers behind NAT. Unset: host candidates only.
    #[serde(default)]
    pub stun_server: Option<String>,
    /// TURN relays, `turn://user:password@host:port` (`turns://` for TLS), for viewers that can
    /// reach framegate only through a relay. The passwords are never logged.
    #[serde(default)]
    pub turn_servers: Vec<String>,
    /// UDP ports media may use, `[first, last]` (to open a firewall for). Unset: any free port.
    #[serde(default)]
    pub udp_ports: Option<[u16; 2]>,
}

impl WebRtcConfig {
    /// The addresses ICE may use: the configured ones, else the HTTP server's when it is bound
    /// to one address; empty means every interface.
    pub fn addresses(&self, http: SocketAddr) -> Vec<IpAddr> {
        if !self.ice_addresses.is_empty() {
            self.ice_addresses.clone()
        } else if http.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![http.ip()]
        }
    }

    /// Checks the server URLs and the port range.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(stun) = &self.stun_server {
            server_url(stun, &["stun"], false)
                .map_err(|e| format!("server.webrtc.stun_server: {e}"))?;
        }
        for (i, turn) in self.turn_servers.iter().enumerate() {
            server_url(turn, &["turn", "turns"], true)
                .map_err(|e| format!("server.webrtc.turn_servers[{i}]: {e}"))?;
        }
        if let Some([first, last]) = self.udp_ports
            && (first == 0 || first > last)
        {
            return Err(format!(
                "server.webrtc.udp_ports: [{first}, {last}] is not a range of ports (first ≥ 1, first ≤ last)"
            ));
        }
        Ok(())
    }
}

/// Checks `scheme://[user:password@]host:port`.
fn server_url(text: &str, schemes: &[&str], credentials: bool) -> Result<(), String> {
    let shown = super::masked_text_url(text);
    let url = url::Url::parse(text).map_err(|e| format!("`{shown}` is not a URL ({e})"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "`{shown}` must start with {}",
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    if url.host_str().is_none_or(str::is_empty) || url.port().is_none() {
        return Err(format!("`{shown}` needs a host and a port"));
    }
    if credentials && (url.username().is_empty() || url.password().is_none()) {
        return Err(format!("`{shown}` needs user:password@ before the host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_the_http_servers() {
        let c = WebRtcConfig::default();
        assert_eq!(
            c.addresses("127.0.0.1:8080".parse().unwrap()),
            vec![IpAddr::from([127, 0, 0, 1])]
        );
        assert!(c.addresses("0.0.0.0:8080".parse().unwrap()).is_empty());
        let c = WebRtcConfig {
            ice_addresses: vec![IpAddr::from([10, 0, 0, 2])],
            ..c
        };
        assert_eq!(
            c.addresses("0.0.0.0:8080".parse().unwrap()),
            vec![IpAddr::from([10, 0, 0, 2])]
        );
    }

    #[test]
    fn server_urls_and_ports_are_checked() {
        let ok = WebRtcConfig {
            stun_server: Some("stun://stun.example.net:3478".into()),
            turn_servers: vec!["turns://user:secret@turn.example.net:5349".into()],
            udp_ports: Some([40000, 40100]),
            ..WebRtcConfig::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let bad = |c: WebRtcConfig| c.validate().unwrap_err();
        let e = bad(WebRtcConfig {
            stun_server: Some("stun.example.net:3478".into()),
            ..ok.clone()
        });
        assert!(e.contains("stun_server") && e.contains("stun://"), "{e}");
        let e = bad(WebRtcConfig {
            turn_servers: vec!["turn://turn.example.net:3478".into()],
            ..ok.clone()
        });
        assert!(
            e.contains("turn_servers[0]") && e.contains("user:password"),
            "{e}"
        );
        let e = bad(WebRtcConfig {
            turn_servers: vec!["turn://user:secret@turn.example.net".into()],
            ..ok.clone()
        });
        assert!(e.contains("port") && !e.contains("secret"), "{e}");
        let e = bad(WebRtcConfig {
            udp_ports: Some([5000, 4000]),
            ..ok
        });
        assert!(e.contains("udp_ports"), "{e}");
    }
}
