//! Backpressure between connections: taking the session's mail only as far as
//! the outbound queue has room (what is left keeps its publishers waiting),
//! and a publisher waiting, bounded by `maxPublisherWait`, for room in the
//! mailboxes its last PUBLISH found full.

use super::{Conn, End};
use crate::broker::events::DisconnectionReason;
use crate::broker::message::Delivery;
use crate::broker::session::{Deliver, Kick, Session, Woken};
use crate::broker::stats::DropReason;
use mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::info;

/// Past this, the mail queue gives memory back once traffic is light again.
const MAIL_KEEP: usize = 1024;

/// The attached session and the connection's pinned wake-up future.
pub(super) type Own<'s, 'w> = (&'s Session, Pin<&'w mut Woken<'s>>);

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Takes the session's mail, as much as the queue behind the inflight window
    /// has room for, and acts on a kick. Mail left in the mailbox keeps its
    /// publishers waiting (backpressure) instead of being dropped here.
    pub(super) fn take_mail(&mut self, session: &Session) {
        let mut mail = std::mem::take(&mut self.traffic.mail);
        let max = self.shared.config.max_queued_messages;
        let room = self.traffic.outbound.room(max);
        let got = session.take_mail(self.conn_id, max, room, &mut mail);
        self.mail_left = got.left > 0;
        for d in mail.drain(..) {
            self.enqueue(d);
        }
        if mail.capacity() > MAIL_KEEP && got.taken < MAIL_KEEP / 4 {
            mail.shrink_to(MAIL_KEEP / 4);
        }
        self.traffic.mail = mail;
        if got.detached {
            // The session no longer knows this connection.
            self.disconnection
                .get_or_insert(DisconnectionReason::SessionTakenOver);
            self.end.get_or_insert(End::Abnormal);
            return;
        }
        if got.recheck {
            self.recheck_after_reload();
        }
        let Some(client) = &self.client else { return };
        match got.kick {
            Kick::TakenOver => {
                info!(client_id = %client.client_id, "session taken over by a new connection");
                self.server_disconnect(DisconnectReasonCode::SessionTakenOver, None);
            }
            Kick::None => {}
        }
    }

    /// Waits (bounded by `maxPublisherWait`) for room in the mailboxes this
    /// client's last PUBLISH found full; what still finds no room is dropped.
    pub(super) async fn wait_for_room(&mut self, own: &mut Option<Own<'_, '_>>) {
        let deadline = Instant::now() + self.shared.config.max_publisher_wait;
        let mut blocked = std::mem::take(&mut self.traffic.blocked);
        for (target, d) in blocked.drain(..) {
            let stored = d.stored;
            if !self.deliver_waiting(&target, d, deadline, own).await {
                self.shared
                    .stats
                    .drop_message(DropReason::PublisherWaitExpired);
                crate::broker::durable::unstore(
                    &self.shared,
                    &target.client_id,
                    stored.into_iter().collect(),
                );
            }
        }
        self.traffic.blocked = blocked;
    }

    /// Delivers one blocked copy once `target`'s mailbox has room, until
    /// `deadline`. Meanwhile this connection goes on taking and sending its own
    /// mail: two clients publishing to each other must not wait on each other.
    pub(super) async fn deliver_waiting(
        &mut self,
        target: &Session,
        mut d: Delivery,
        deadline: Instant,
        own: &mut Option<Own<'_, '_>>,
    ) -> bool {
        let max = self.shared.config.max_queued_messages;
        loop {
            let room = target.room();
            tokio::pin!(room);
            room.as_mut().enable();
            match target.deliver(d, max) {
                Deliver::Queued => return true,
                Deliver::Dropped => return false,
                Deliver::Full(back) => d = back,
            }
            if target.is_stalled() || self.end.is_some() {
                return false;
            }
            let woke = match own.as_mut() {
                Some((_, wake)) => tokio::select! {
                    r = tokio::time::timeout_at(deadline, room.as_mut()) => r.map(|()| false),
                    () = wake.as_mut() => Ok(true),
                },
                None => tokio::time::timeout_at(deadline, room)
                    .await
                    .map(|()| false),
            };
            match woke {
                // Room, perhaps: try again.
                Ok(false) => {}
                Ok(true) => {
                    if let Some((session, wake)) = own.as_mut() {
                        wake.set(session.woken());
                        self.take_mail(session);
                        self.drain_pending();
                        self.flush().await;
                    }
                }
                Err(_) => {
                    target.mark_stalled();
                    return false;
                }
            }
        }
    }

    /// Feeds received bytes to the codec, one packet per `recv` call.
    /// Sends what is ready (acknowledgements), then waits for room for the blocked copies.
    pub(super) async fn relieve(&mut self, own: &mut Option<Own<'_, '_>>) {
        self.flush().await;
        self.wait_for_room(own).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::fuzzing;
    use crate::broker::lifecycle::{self, Claim};
    use mqtt_protocol_core::mqtt::packet::Qos;
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::time::Duration;

    fn copy() -> Delivery {
        Delivery::for_test("a", b"x", Qos::AtLeastOnce)
    }

    /// A publisher's connection and a subscriber's session (attached as
    /// connection 9) whose mailbox is full.
    fn publisher_and_full_subscriber(
        broker: &crate::broker::Broker,
    ) -> (Conn<tokio::io::DuplexStream>, Arc<Session>, usize) {
        let shared = broker.shared().clone();
        let max = shared.config.max_queued_messages;
        let Claim::Attached { session, .. } =
            lifecycle::claim(&shared, Some("sub"), "admin", true, 9)
        else {
            panic!("admin may claim a session");
        };
        for _ in 0..max {
            assert!(matches!(session.deliver(copy(), max), Deliver::Queued));
        }
        assert!(matches!(session.deliver(copy(), max), Deliver::Full(_)));
        let (_client, io) = tokio::io::duplex(1024);
        (Conn::new(shared, io, "pub".into(), 1, None), session, max)
    }

    #[tokio::test(start_paused = true)]
    async fn a_publisher_waits_for_room_and_delivers_when_the_subscriber_takes_its_mail() {
        let broker = fuzzing::broker();
        let (mut conn, target, max) = publisher_and_full_subscriber(&broker);
        let taker = target.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            taker.take_mail(9, max, max, &mut VecDeque::new());
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(
            conn.deliver_waiting(&target, copy(), deadline, &mut None)
                .await
        );
        assert!(!target.is_stalled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_publisher_gives_up_at_its_deadline_and_the_stalled_subscriber_is_skipped_after() {
        let broker = fuzzing::broker();
        let (mut conn, target, _) = publisher_and_full_subscriber(&broker);
        let deadline = Instant::now() + Duration::from_secs(1);
        assert!(
            !conn
                .deliver_waiting(&target, copy(), deadline, &mut None)
                .await
        );
        assert!(target.is_stalled());
        // Stalled: the next copy is refused at once, without waiting for a deadline.
        let later = Instant::now() + Duration::from_secs(3600);
        let refused = tokio::time::timeout(
            Duration::from_secs(1),
            conn.deliver_waiting(&target, copy(), later, &mut None),
        )
        .await;
        assert_eq!(refused.ok(), Some(false));
    }
}
