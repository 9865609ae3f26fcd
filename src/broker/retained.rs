//! Retained messages: the last retained message of each topic.

use super::message::Message;
use crate::topic;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The retained message store.
#[derive(Default)]
pub struct Retained {
    by_topic: RwLock<HashMap<String, Arc<Message>>>,
}

impl Retained {
    /// Stores `msg` as the retained message of its topic; an empty payload deletes it.
    pub fn set(&self, msg: Arc<Message>) {
        let mut map = self.by_topic.write().unwrap_or_else(|e| e.into_inner());
        if msg.payload.is_empty() {
            map.remove(&msg.topic);
        } else {
            map.insert(msg.topic.clone(), msg);
        }
    }

    /// The unexpired retained messages matching `filter`.
    pub fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let mut map = self.by_topic.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, m| !m.expired());
        let mut out: Vec<Arc<Message>> = map
            .values()
            .filter(|m| topic::matches(filter, &m.topic))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }

    pub fn len(&self) -> usize {
        self.by_topic
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
