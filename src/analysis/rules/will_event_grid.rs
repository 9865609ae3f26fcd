//! ## What it does
//! Reports will settings Azure Event Grid does not accept: QoS 2, Will Retain, and a
//! will delay above 300 seconds. With `--target eventgrid` each is an error; for the
//! local broker (which supports QoS 2 and retain) only the delay is a warning.
//!
//! ## Why is this bad?
//! Event Grid's MQTT broker supports QoS 0 and 1 and caps the will delay at 300 s
//! (semantics.md §5): a device configured this way is refused, or its will is sent
//! earlier than planned, once the policy is deployed there.
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor1:
//!     will: { topic: clients/sensor1/status, qos: 2, retain: true, delaySeconds: 600 }
//! ```

use super::super::{Context, Target};
use crate::diag::{Code, Diagnostic, Diagnostics};

/// Event Grid's cap on the will delay interval, in seconds.
pub const MAX_WILL_DELAY: u32 = 300;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let event_grid = cx.options.target == Target::EventGrid;
    for c in &cx.resolved().clients {
        let Some(will) = &c.will else { continue };
        if event_grid && will.qos.value == 2 {
            out.push(
                Diagnostic::new(Code::WillEventGrid, format!("will of `{}` has QoS 2, which Event Grid does not support", c.name.value))
                    .severity(cx.compatibility_severity())
                    .at(will.qos.span)
                    .help("use `qos: 1`"),
            );
        }
        if event_grid && will.retain.value {
            out.push(
                Diagnostic::new(Code::WillEventGrid, format!("will of `{}` is retained, which Event Grid does not support", c.name.value))
                    .severity(cx.compatibility_severity())
                    .at(will.retain.span)
                    .help("use `retain: false`"),
            );
        }
        if let Some(delay) = will.delay_seconds.as_ref().filter(|d| d.value > MAX_WILL_DELAY) {
            out.push(
                Diagnostic::new(Code::WillEventGrid, format!("will delay of `{}` is {} s; Event Grid caps it at {MAX_WILL_DELAY} s", c.name.value, delay.value))
                    .severity(cx.compatibility_severity())
                    .at(delay.span)
                    .help(format!("use `delaySeconds: {MAX_WILL_DELAY}` or less")),
            );
        }
    }
}
