//! The configuration of `topicgate serve` from its three sources: flags win
//! over `TOPICGATE_*` environment variables (clap reads both), which win over
//! `--config FILE`, which wins over the defaults (decision 0023).
//!
//! The file (YAML or JSON) holds the serve keys below and, at the top level
//! as before, the broker limits of `BrokerConfig` (`maxConnections`, ...).
//! Relative paths in it are relative to the file's directory.

use super::serve::ServeArgs;
use super::serve_ops::LogFormat;
use crate::broker::BrokerConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The serve keys of `--config FILE` (every other top-level key is a limit).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct ServeFile {
    policy: Option<PathBuf>,
    mqtt: Vec<String>,
    mqtts: Vec<String>,
    ws: Vec<String>,
    wss: Vec<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    dev: Option<bool>,
    anonymous: Option<String>,
    watch: Option<bool>,
    data: Option<PathBuf>,
    metrics: Option<SocketAddr>,
    events_file: Option<PathBuf>,
    events_webhook: Option<String>,
    log_format: Option<LogFormat>,
}

/// The serve keys, as the file spells them.
const SERVE_KEYS: [&str; 15] = [
    "policy",
    "mqtt",
    "mqtts",
    "ws",
    "wss",
    "cert",
    "key",
    "dev",
    "anonymous",
    "watch",
    "data",
    "metrics",
    "eventsFile",
    "eventsWebhook",
    "logFormat",
];

/// The effective configuration: what `serve` runs with, and what
/// `--print-config` prints (YAML that `--config` reads back).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub policy: Option<PathBuf>,
    pub mqtt: Vec<String>,
    pub mqtts: Vec<String>,
    pub ws: Vec<String>,
    pub wss: Vec<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub dev: bool,
    pub anonymous: Option<String>,
    pub watch: bool,
    /// The durable store's directory (`--data`); none: state in memory only.
    pub data: Option<PathBuf>,
    pub metrics: Option<SocketAddr>,
    pub events_file: Option<PathBuf>,
    pub events_webhook: Option<String>,
    pub log_format: LogFormat,
    #[serde(flatten)]
    pub limits: BrokerConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read `{0}`: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("`{0}`: {1}")]
    Syntax(PathBuf, String),
    #[error("`{0}`: the configuration must be a mapping of keys to values")]
    NotAMapping(PathBuf),
    #[error("`{0}`: {1}\n  help: the keys are the serve keys ({keys}) and the broker limits (docs/broker.md)", keys = SERVE_KEYS.join(", "))]
    Invalid(PathBuf, String),
    #[error(
        "no policy: give it as the first argument, in TOPICGATE_POLICY, or as `policy:` in --config FILE"
    )]
    NoPolicy,
    #[error("cannot write the configuration: {0}")]
    Print(String),
}

/// Reads `--config FILE` if given and merges it under the flags and
/// environment in `args`.
pub fn resolve(args: &ServeArgs) -> Result<Settings, ConfigError> {
    let (file, limits) = match &args.config {
        Some(path) => read(path)?,
        None => (ServeFile::default(), BrokerConfig::default()),
    };
    let or_file = |flag: &[String], file: Vec<String>| {
        if flag.is_empty() {
            file
        } else {
            flag.to_vec()
        }
    };
    Ok(Settings {
        policy: args.policy.clone().or(file.policy),
        mqtt: or_file(&args.mqtt, file.mqtt),
        mqtts: or_file(&args.mqtts, file.mqtts),
        ws: or_file(&args.ws, file.ws),
        wss: or_file(&args.wss, file.wss),
        cert: args.cert.clone().or(file.cert),
        key: args.key.clone().or(file.key),
        dev: args.dev.or(file.dev).unwrap_or(false),
        anonymous: args.anonymous.clone().or(file.anonymous),
        watch: args.watch.or(file.watch).unwrap_or(false),
        data: args.data.clone().or(file.data),
        metrics: args.ops.metrics.or(file.metrics),
        events_file: args.ops.events_file.clone().or(file.events_file),
        events_webhook: args
            .ops
            .events_webhook
            .as_ref()
            .map(|u| u.to_string())
            .or(file.events_webhook),
        log_format: args
            .ops
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Text),
        limits,
    })
}

impl Settings {
    /// The policy path, which every source may leave out but serving needs.
    pub fn policy_path(&self) -> Result<&Path, ConfigError> {
        self.policy.as_deref().ok_or(ConfigError::NoPolicy)
    }

    /// The effective configuration as YAML.
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        serde_saphyr::to_string(self).map_err(|e| ConfigError::Print(e.to_string()))
    }
}

/// The serve keys and the limits of a configuration file.
fn read(path: &Path) -> Result<(ServeFile, BrokerConfig), ConfigError> {
    let bytes = crate::pipeline::read_limited(path)
        .map_err(|e| ConfigError::Syntax(path.into(), e.to_string()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::Syntax(path.into(), "the file is not UTF-8 text".into()))?;
    // Read as a generic document first: the serve keys and the limits share
    // the top level, and each part is then checked for unknown keys on its own.
    let doc: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_saphyr::from_str(&text)
            .map_err(|e| ConfigError::Syntax(path.into(), e.to_string()))?
    };
    let mut limits = match doc {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Null => serde_json::Map::new(),
        _ => return Err(ConfigError::NotAMapping(path.into())),
    };
    let mut serve = serde_json::Map::new();
    for key in SERVE_KEYS {
        if let Some(v) = limits.remove(key) {
            serve.insert(key.to_string(), v);
        }
    }
    let invalid = |e: serde_json::Error| ConfigError::Invalid(path.into(), e.to_string());
    let mut file: ServeFile =
        serde_json::from_value(serde_json::Value::Object(serve)).map_err(invalid)?;
    let limits: BrokerConfig =
        serde_json::from_value(serde_json::Value::Object(limits)).map_err(invalid)?;
    let base = path.parent().unwrap_or(Path::new(""));
    for p in [
        &mut file.policy,
        &mut file.cert,
        &mut file.key,
        &mut file.events_file,
        &mut file.data,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    Ok((file, limits))
}
