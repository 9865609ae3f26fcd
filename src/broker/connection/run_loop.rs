//! The connection's task: the CONNECT handshake, then one loop that waits on
//! the socket, the session's wake-up, shutdown and the keep-alive and
//! partial-packet timers, and acts on whichever comes first. Reading the
//! socket goes through one scratch buffer per worker thread.

use super::codec::REST_AFTER;
use super::{Conn, End};
use crate::broker::preauth::{self, ConnectReader, Early, Progress};
use crate::broker::session::Session;
use mqtt_protocol_core::mqtt::connection::TimerKind;
use mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tracing::{debug, info};

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) async fn serve(&mut self) {
        // Boxed: its state is needed only until CONNACK, not by every idle connection.
        Box::pin(self.handshake()).await;
        // The CONNECT's queue slot would otherwise stay allocated on every idle connection.
        self.traffic.inbox = VecDeque::new();
        if let Some(session) = self.client.as_ref().map(|c| c.session.clone()) {
            self.connected(&session).await;
        }
        // Boxed, like the handshake and `linger`: its timer would otherwise be
        // part of every idle connection's future (decision 0036).
        let _ = Box::pin(tokio::time::timeout(
            Duration::from_secs(1),
            self.io.shutdown(),
        ))
        .await;
        self.finish();
        // Boxed: its read buffer would otherwise be part of every idle connection's state.
        Box::pin(self.linger()).await;
    }

    /// After our last packet, reads and discards what the client still sends, until
    /// it closes, for at most `LINGER` and `LINGER_BYTES`. Closing a socket with
    /// unread input makes the kernel answer with a reset, which can destroy what we
    /// sent last (a DISCONNECT and its reason) before the client reads it: a client
    /// still answering PUBRECs when we disconnect it (0x93) would see a broken pipe
    /// instead. Runs after `finish`, so wills and session state never wait for it.
    pub(super) async fn linger(&mut self) {
        const LINGER: Duration = Duration::from_millis(500);
        const LINGER_BYTES: usize = 64 * 1024;
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        let mut buf = [0u8; 1024];
        while discarded < LINGER_BYTES {
            let mut rb = ReadBuf::new(&mut buf);
            let read = std::future::poll_fn(|cx| Pin::new(&mut self.io).poll_read(cx, &mut rb));
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(())) if !rb.filled().is_empty() => discarded += rb.filled().len(),
                _ => break,
            }
        }
    }

    /// Phase 1: a complete CONNECT within the connect timeout (slowloris guard),
    /// read within `maxConnectPacketSize` and the pre-authentication budget
    /// (see `preauth`), checked, then handed to the codec.
    pub(super) async fn handshake(&mut self) {
        let mut shutdown = self.shared.shutdown.clone();
        let deadline = Instant::now() + self.shared.config.connect_timeout;
        let mut reader = ConnectReader::new(
            self.shared.config.max_connect_packet_size,
            self.shared.pre_auth_budget.clone(),
        );
        let connect = loop {
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, std::future::poll_fn(|cx| self.poll_read_connect(cx, &mut reader))) => r,
                _ = shutdown.changed() => { self.end = Some(End::Shutdown); break None; }
            };
            match read {
                Err(_) => {
                    debug!(peer = %self.peer, "no CONNECT within the connect timeout");
                    break None;
                }
                Ok(Err(_)) | Ok(Ok(None)) => break None,
                Ok(Ok(Some(Progress::More))) => {}
                Ok(Ok(Some(Progress::Connect(bytes)))) => break Some(bytes),
                Ok(Ok(Some(Progress::Refuse { why, level }))) => {
                    self.refuse_early(why, level);
                    break None;
                }
            }
        };
        match connect.map(preauth::check) {
            Some(Ok(checked)) => {
                self.client_receive_maximum = checked.receive_maximum;
                self.feed(&checked.bytes);
                // The CONNECT now lives in the codec's packet: give its budget back.
                drop(checked);
                drop(reader);
                self.process_inbox(None).await;
            }
            Some(Err((why, level))) => self.refuse_early(why, level),
            None => {}
        }
        if self.client.is_none() {
            self.end.get_or_insert(End::Abnormal);
        }
        self.flush().await;
    }

    /// Serves an attached client until the connection ends, in two phases
    /// that take turns: busy (`busy`, boxed) while the client talks or gets
    /// mail, resting (`resting`, held inline) once the codec rests and nothing
    /// is pending. Only the resting phase is part of every idle connection's
    /// future; the busy phase's state (its waiters, the packet handling and
    /// writing in progress) is allocated while the client is busy (decision 0036).
    pub(super) async fn connected(&mut self, session: &Arc<Session>) {
        if self.end.is_some() {
            return;
        }
        self.after_connack();
        if self.end.is_some() {
            // Sending what CONNACK queued ended the connection: what it wrote
            // still goes out (boxed: a rare path every idle connection's future
            // would otherwise make room for).
            Box::pin(self.flush()).await;
            return;
        }
        let mut stir = Stir::Start;
        loop {
            Box::pin(self.busy(session, stir)).await;
            if self.end.is_some() {
                break;
            }
            stir = self.resting(session).await;
        }
    }

    /// Waits, holding as little as possible, for what ends a rest: a read or
    /// the session's wake-up. Shutdown comes as the session's wake-up
    /// (`Broker::shutdown` wakes every session after setting the flag), and so
    /// does the keep-alive deadline (the broker's `KeepAliveWatch`): every
    /// resting connection is spared a `watch` waiter and a timer. The busy
    /// phase then sees the flag or the deadline passed.
    pub(super) async fn resting(&mut self, session: &Arc<Session>) -> Stir {
        // Resting, nothing but the keep-alive can be due: no packet is partly
        // received and the codec has no rest check (it rests).
        let watched = self.keepalive.map(|(deadline, _)| {
            let shared = &self.shared;
            shared
                .keepalive
                .watch(deadline, self.conn_id, session.clone(), &shared.shutdown);
            deadline
        });
        let stir = tokio::select! {
            r = std::future::poll_fn(|cx| self.poll_read_feed(cx)) => Stir::read(r),
            () = session.woken() => Stir::Woken,
        };
        if let Some(deadline) = watched {
            self.shared.keepalive.unwatch(deadline, self.conn_id);
        }
        stir
    }

    /// The busy phase: acts on `stir` (what ended the rest, or the start after
    /// CONNACK), then on the socket, the session's wake-up, shutdown and the
    /// timers until the connection ends or may rest again. The wake-up,
    /// shutdown and timer futures live across turns: re-creating them every
    /// turn would register and unregister a waiter (and a timer) for every message.
    pub(super) async fn busy(&mut self, session: &Session, stir: Stir) {
        let wake = session.woken();
        tokio::pin!(wake);
        // Its own receiver, so that no idle connection holds one: a shutdown
        // flagged before it was taken counts at once.
        let mut shutdown = self.shared.shutdown.clone();
        let flagged = *shutdown.borrow_and_update();
        let stop = async move {
            if !flagged {
                let _ = shutdown.changed().await;
            }
        };
        tokio::pin!(stop);
        // The rest of the connection (not only of its codec) is checked every
        // REST_AFTER: the phase ends when nothing stirred it since the last check.
        let mut quiet_check = Instant::now() + REST_AFTER;
        let mut stirred = false;
        let idle_check = tokio::time::sleep_until(self.next_deadline().min(quiet_check));
        tokio::pin!(idle_check);
        let mut next = Some(stir);
        while self.end.is_none() {
            let stir = match next.take() {
                Some(stir) => stir,
                None => tokio::select! {
                    r = std::future::poll_fn(|cx| self.poll_read_feed(cx)) => Stir::read(r),
                    () = &mut wake => {
                        wake.set(session.woken());
                        Stir::Woken
                    }
                    () = &mut stop => Stir::Shutdown,
                    // Owed retained messages beyond one turn's share (nothing to wait for).
                    () = std::future::ready(()), if self.retained_turn() => Stir::Retained,
                    () = &mut idle_check => Stir::Deadline,
                },
            };
            match stir {
                Stir::Start => {
                    self.flush().await;
                    // A client that goes quiet after CONNACK rests at once.
                    if self.rest(None) && self.may_leave_busy() {
                        return;
                    }
                }
                Stir::Closed => self.end = Some(End::Abnormal),
                Stir::Read => {
                    stirred = true;
                    self.process_inbox(Some((session, wake.as_mut()))).await;
                }
                Stir::Woken => {
                    stirred = true;
                    self.take_mail(session);
                }
                Stir::Shutdown => {
                    self.server_disconnect(DisconnectReasonCode::ServerShuttingDown, None);
                    self.end = Some(End::Shutdown);
                }
                Stir::Retained => {}
                Stir::Deadline => {
                    // The timer runs from when it was armed; packets since then moved
                    // the deadline, so re-arm unless it really passed.
                    let now = Instant::now();
                    match self.keepalive {
                        _ if self.partial_deadline.is_some_and(|t| t <= now) => {
                            self.partial_expired()
                        }
                        Some((t, _)) if t <= now => self.keepalive_expired(),
                        _ => {
                            let rested = self.mqtt.rest_check().is_some_and(|t| t <= now)
                                && self.rest(Some(now));
                            let quiet = quiet_check <= now && !std::mem::take(&mut stirred);
                            if (rested || quiet) && self.may_leave_busy() {
                                return;
                            }
                            if quiet_check <= now {
                                quiet_check = now + REST_AFTER;
                            }
                            idle_check
                                .as_mut()
                                .reset(self.next_deadline().min(quiet_check));
                        }
                    }
                }
            }
            // A packet begun in this turn may need the timer sooner.
            let next = self.next_deadline();
            if next < idle_check.deadline() {
                idle_check.as_mut().reset(next);
            }
            self.drain_pending();
            if self.mail_left
                && self.traffic.outbound.len() < self.shared.config.max_queued_messages
            {
                self.take_mail(session);
                self.drain_pending();
            }
            self.flush().await;
        }
    }

    /// Whether the busy phase may end: the codec rests, nothing is pending
    /// that the resting phase would not wake for, and the broker is not
    /// shutting down (the resting phase has no waiter of its own for that: a
    /// shutdown flagged before this check is seen here, one after it wakes
    /// the session).
    fn may_leave_busy(&self) -> bool {
        !*self.shared.shutdown.borrow()
            && self.mqtt.if_live().is_none()
            && self.codec_may_rest()
            && self.traffic.out.is_empty()
            && self.traffic.mail.is_empty()
            && !self.mail_left
            && self.traffic.outbound.is_idle()
    }

    /// When the keep-alive period ends without a packet, the packet being
    /// received must be complete, or the codec is checked for rest, whichever
    /// is first (far away when none is set).
    pub(super) fn next_deadline(&self) -> Instant {
        let keepalive = match self.keepalive {
            Some((t, _)) => t,
            None => Instant::now() + Duration::from_secs(3600),
        };
        [self.partial_deadline, self.mqtt.rest_check()]
            .into_iter()
            .flatten()
            .fold(keepalive, Instant::min)
    }

    /// A packet stayed incomplete for `partialPacketTimeout`: whatever the
    /// keep-alive, a client cannot make us hold a partial packet forever.
    pub(super) fn partial_expired(&mut self) {
        let who = self.client.as_ref().map(|c| c.client_id.clone());
        info!(peer = %self.peer, client_id = ?who, "packet not completed within partialPacketTimeout: closing");
        self.shared.stats.protocol_errors.inc();
        self.partial_deadline = None;
        self.end.get_or_insert(End::Abnormal);
    }

    pub(super) fn keepalive_expired(&mut self) {
        if let Some(c) = &self.client {
            info!(client_id = %c.client_id, "keep-alive expired");
        }
        self.keepalive = None;
        match self.mqtt.live() {
            Ok(codec) => {
                let ev = codec.notify_timer_fired(TimerKind::PingreqRecv);
                self.handle_events(ev);
            }
            Err(e) => self.codec_lost(&e),
        }
        self.end.get_or_insert(End::Abnormal);
    }

    /// Reads what the socket has into the worker thread's scratch buffer and
    /// feeds it to the codec at once. The buffer is borrowed only inside this
    /// poll, never across an await, so one buffer per thread serves every
    /// connection and an idle connection holds none.
    pub(super) fn poll_read_feed(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < READ_SCRATCH_SIZE {
                scratch.resize(READ_SCRATCH_SIZE, 0);
            }
            let mut buf = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n > 0 {
                        self.feed(buf.filled());
                        let heard = std::mem::take(&mut self.heard);
                        if heard {
                            // Any packet from the client restarts the keep-alive period.
                            if let Some((_, ms)) = self.keepalive {
                                self.keepalive =
                                    Some((Instant::now() + Duration::from_millis(ms), ms));
                            }
                        }
                        // A packet's deadline runs from its first byte: a new one
                        // starts when the read ends inside a packet begun after the last
                        // complete one.
                        self.partial_deadline = match self.partial_deadline {
                            _ if !self.frames.mid_packet() => None,
                            Some(t) if !heard => Some(t),
                            _ => Some(Instant::now() + self.shared.config.partial_packet_timeout),
                        };
                    }
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Reads at most what the CONNECT still lacks (see [`ConnectReader::want`]);
    /// `None` when the stream ended.
    pub(super) fn poll_read_connect(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut ConnectReader,
    ) -> Poll<std::io::Result<Option<Progress>>> {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < READ_SCRATCH_SIZE {
                scratch.resize(READ_SCRATCH_SIZE, 0);
            }
            let want = reader.want().clamp(1, READ_SCRATCH_SIZE);
            let mut buf = ReadBuf::new(&mut scratch[..want]);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(None)),
                Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(reader.push(buf.filled())))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                // A too large CONNECT is refused at once: its version only if it came
                // with the header.
                Poll::Pending if reader.probing() => Poll::Ready(Ok(Some(reader.give_up()))),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Refuses a connection whose CONNECT did not reach the codec: MQTT 5 gets
    /// a CONNACK with the reason code, 3.1.1 (or an unknown version) a close.
    pub(super) fn refuse_early(&mut self, why: Early, level: Option<u8>) {
        self.shared.stats.connections_refused.inc();
        if matches!(
            why,
            Early::Malformed | Early::ProtocolError | Early::NotConnect
        ) {
            self.shared.stats.protocol_errors.inc();
        }
        info!(peer = %self.peer, reason = ?why, "CONNECT refused before authentication");
        if let Some(bytes) = why.reply(level) {
            self.traffic.out.extend_from_slice(&bytes);
        }
        self.end.get_or_insert(End::Abnormal);
    }
}

/// What a turn of the connected loop acts on.
pub(super) enum Stir {
    /// Just after CONNACK.
    Start,
    /// The socket read bytes (fed to the codec already).
    Read,
    /// The socket ended or failed.
    Closed,
    /// The session's wake-up: mail, or a kick.
    Woken,
    Shutdown,
    /// Owed retained messages beyond one turn's share.
    Retained,
    /// The timer: keep-alive, partial packet, or a rest check.
    Deadline,
}

impl Stir {
    fn read(r: std::io::Result<usize>) -> Stir {
        match r {
            Ok(0) | Err(_) => Stir::Closed,
            Ok(_) => Stir::Read,
        }
    }
}

thread_local! {
    /// Every connection served by a worker thread reads through this buffer.
    static READ_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}
const READ_SCRATCH_SIZE: usize = 64 * 1024;
