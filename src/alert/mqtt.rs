//! MQTT delivery: one QoS 1 `PUBLISH` per alert, done when the broker's `PUBACK` arrives.
//! A short-lived connection per batch of alerts: alerts are rare, and a fresh connection never
//! carries a stale session.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

use crate::config::MqttTarget;
use crate::store::Delivery;

/// Publishes the alert and waits for the broker's acknowledgement.
pub async fn publish(target: &MqttTarget, d: &Delivery) -> Result<()> {
    let host = target.url.host_str().context("mqtt.url has no host")?;
    let port = target.url.port().unwrap_or(1883);
    let client_id = format!("framegate-{}", &d.event_uid[..d.event_uid.len().min(12)]);
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(10));
    if !target.url.username().is_empty() {
        options.set_credentials(
            target.url.username(),
            target.url.password().unwrap_or_default(),
        );
    }
    let (client, mut events) = AsyncClient::new(options, 4);
    client
        .publish(
            target.topic.clone(),
            QoS::AtLeastOnce,
            false,
            d.payload.clone().into_bytes(),
        )
        .await?;
    let acked = tokio::time::timeout(Duration::from_secs_f64(target.timeout_s), async {
        let mut pkid = None;
        loop {
            match events.poll().await? {
                Event::Outgoing(Outgoing::Publish(p)) => pkid = Some(p),
                Event::Incoming(Packet::PubAck(ack)) if Some(ack.pkid) == pkid => {
                    return Ok::<_, rumqttc::ConnectionError>(());
                }
                _ => {}
            }
        }
    })
    .await;
    let _ = client.try_disconnect();
    match acked {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => bail!("MQTT broker {host}:{port}: {e}"),
        Err(_) => bail!(
            "MQTT broker {host}:{port}: no acknowledgement within {} s",
            target.timeout_s
        ),
    }
}
