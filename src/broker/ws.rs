//! MQTT over WebSockets (`--ws`, `--wss`): the WebSocket handshake with
//! subprotocol `mqtt`, then a byte stream the broker serves like TCP.
//!
//! MQTT over WebSockets (MQTT 5 §6) carries the packet bytes in binary frames,
//! with no relation between frame and packet boundaries. A pump task moves the
//! payloads of binary frames into one end of an in-memory duplex pipe and the
//! broker's writes out as binary frames; the broker serves the other end, so
//! enforcement, keep-alive and wills are exactly those of TCP. When either side
//! ends, the pipe closes and the broker sees end-of-stream (a will fires unless
//! the client sent DISCONNECT first).

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

/// Why a WebSocket upgrade did not yield an MQTT stream.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("WebSocket handshake failed: {0}")]
    Handshake(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("WebSocket handshake timed out")]
    Timeout,
}

/// The subprotocol MQTT clients ask for (MQTT 5 §6, 3.1.1 §6).
pub const SUBPROTOCOL: &str = "mqtt";

/// Bytes buffered in each direction of the pipe between the socket and the broker.
const PIPE_BYTES: usize = 64 * 1024;

/// Runs the WebSocket handshake on `stream` (refusing clients that do not offer
/// subprotocol `mqtt`) and returns the MQTT byte stream carried in its binary
/// frames. `max_message` bounds one WebSocket message.
pub async fn accept<S>(stream: S, max_message: usize) -> Result<DuplexStream, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, choose_mqtt, Some(config)).await?;
    let (broker_side, pump_side) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(pump(ws, pump_side));
    Ok(broker_side)
}

/// Accepts the handshake only with subprotocol `mqtt`, and answers with it.
// The signature is the one tungstenite's handshake `Callback` takes.
#[allow(clippy::result_large_err)]
fn choose_mqtt(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL));
    if !offered {
        let mut refusal = ErrorResponse::new(Some(
            "MQTT over WebSockets requires subprotocol `mqtt`".into(),
        ));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    response.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(response)
}

/// Moves bytes between the WebSocket and the broker's end of the pipe until
/// either closes. A text frame is a protocol error (MQTT-6.0.0-1): close.
async fn pump<S>(ws: tokio_tungstenite::WebSocketStream<S>, pipe: DuplexStream)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut from_broker, mut to_broker) = tokio::io::split(pipe);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            frame = ws_rx.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    if to_broker.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    debug!("text frame on an MQTT WebSocket: closing");
                    break;
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    debug!(error = %e, "WebSocket read failed");
                    break;
                }
            },
            n = from_broker.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_tx.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    // Closing our half of the pipe is the broker's end-of-stream.
    let _ = to_broker.shutdown().await;
    drop(to_broker);
    drop(from_broker);
    let _ = ws_tx.close().await;
}
