//! Outgoing webhook deliveries, signed as ClickUp signs them: `X-Signature` = lowercase hex
//! HMAC-SHA256 of the raw body keyed by the webhook's secret (FACTS §14).
//!
//! Each webhook has one worker task fed by a channel, so its deliveries arrive in change
//! order. A delivery fails on a non-2xx answer or after 7 s; it is retried up to 5 times
//! (100 ms apart, sim-chosen: the real spacing is not documented), then `fail_count` goes up
//! and the event is dropped. A 410 answer suspends the webhook at once, as does a
//! `fail_count` of 100.
use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::state::{Change, SimTask, State, Webhook};
use super::Inner;
use crate::sim::common::lock;

/// Lowercase hex HMAC-SHA256 of `body` keyed by `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Default)]
pub(crate) struct Hub {
    senders: Mutex<HashMap<String, UnboundedSender<Vec<u8>>>>,
}

impl Hub {
    /// Starts the delivery worker of a webhook. Must run inside the tokio runtime.
    pub fn register(&self, inner: Weak<Inner>, client: reqwest::Client, wh: &Webhook) {
        let (tx, rx) = unbounded_channel();
        lock(&self.senders).insert(wh.id.clone(), tx);
        tokio::spawn(worker(
            inner,
            client,
            wh.id.clone(),
            wh.endpoint.clone(),
            wh.secret.clone(),
            rx,
        ));
    }

    pub fn remove(&self, id: &str) {
        lock(&self.senders).remove(id);
    }

    pub fn clear(&self) {
        lock(&self.senders).clear();
    }

    fn send(&self, id: &str, body: Vec<u8>) {
        if let Some(tx) = lock(&self.senders).get(id) {
            // A closed channel means the webhook was just removed: nothing to deliver to.
            let _ = tx.send(body);
        }
    }

    /// Queues the deliveries for changes to `task`, one per event, to every webhook that
    /// subscribed to that event at the task's location. Called with the state locked, so
    /// queue order is change order.
    pub fn emit(&self, st: &mut State, task: &SimTask, changes: &[Change]) {
        if st.webhooks.is_empty() || changes.is_empty() {
            return;
        }
        let user = st
            .me()
            .map(super::state::member_json)
            .unwrap_or(Value::Null);
        let list = st.list(&task.list_id).cloned();
        let mut events: Vec<(&'static str, Vec<Value>)> = Vec::new();
        for c in changes {
            let hist = st.next_hist_id();
            let item = json!({
                "id": hist.to_string(),
                "type": 1,
                "date": task.date_updated_ms.to_string(),
                "field": c.field,
                "parent_id": task.list_id,
                "data": {},
                "source": null,
                "user": user,
                "before": c.before,
                "after": c.after,
            });
            match events.iter_mut().find(|(e, _)| *e == c.event) {
                Some((_, items)) => items.push(item),
                None => events.push((c.event, vec![item])),
            }
        }
        for wh in &st.webhooks {
            for (event, items) in &events {
                if !wh.wants(event, task, list.as_ref()) {
                    continue;
                }
                let body = json!({
                    "event": event,
                    "history_items": items,
                    "task_id": task.id,
                    "webhook_id": wh.id,
                });
                self.send(&wh.id, body.to_string().into_bytes());
            }
        }
    }

    /// `taskDeleted` carries no history (its shape is unverified, FACTS §14).
    pub fn emit_deleted(&self, st: &State, task: &SimTask) {
        let list = st.list(&task.list_id);
        for wh in &st.webhooks {
            if wh.wants("taskDeleted", task, list) {
                let body = json!({"event": "taskDeleted", "task_id": task.id, "webhook_id": wh.id});
                self.send(&wh.id, body.to_string().into_bytes());
            }
        }
    }
}

enum Outcome {
    Delivered,
    Gone,
    Failed,
}

async fn deliver_once(client: &reqwest::Client, endpoint: &str, sig: &str, body: &[u8]) -> Outcome {
    let res = client
        .post(endpoint)
        .header("content-type", "application/json")
        .header("x-signature", sig)
        .timeout(Duration::from_secs(7))
        .body(body.to_vec())
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => Outcome::Delivered,
        Ok(r) if r.status().as_u16() == 410 => Outcome::Gone,
        _ => Outcome::Failed,
    }
}

async fn worker(
    inner: Weak<Inner>,
    client: reqwest::Client,
    id: String,
    endpoint: String,
    secret: String,
    mut rx: UnboundedReceiver<Vec<u8>>,
) {
    while let Some(body) = rx.recv().await {
        let sig = signature(&secret, &body);
        let mut outcome = Outcome::Failed;
        for attempt in 0..6u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            outcome = deliver_once(&client, &endpoint, &sig, &body).await;
            if !matches!(outcome, Outcome::Failed) {
                break;
            }
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut st = lock(&inner.state);
        let Some(wh) = st.webhooks.iter_mut().find(|w| w.id == id) else {
            return;
        };
        match outcome {
            Outcome::Delivered => wh.status = "active".into(),
            Outcome::Gone => wh.status = "suspended".into(),
            Outcome::Failed => {
                wh.fail_count += 1;
                if wh.fail_count >= 100 {
                    wh.status = "suspended".into();
                } else {
                    wh.status = "failing".into();
                }
            }
        }
        if wh.status == "suspended" {
            drop(st);
            inner.hooks.remove(&id);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
