use super::record::{MessageRecord, OpenWillRecord, SessionRecord, SubRecord, WillRecord};
use super::*;

fn message(topic: &str, payload: &str) -> MessageRecord {
    MessageRecord {
        topic: topic.into(),
        payload: payload.as_bytes().to_vec(),
        qos: 1,
        retain: false,
        props: Vec::new(),
        expires_at_ms: None,
        origin: "pub".into(),
        subscription_ids: Vec::new(),
    }
}

fn session(auth: &str) -> SessionRecord {
    SessionRecord {
        auth_name: auth.into(),
        expiry: 3600,
        protocol: 5,
        subscriptions: vec![SubRecord {
            filter: "a/#".into(),
            qos: 1,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
            subscription_id: None,
        }],
        disconnected_at_ms: Some(1),
        will: Some(WillRecord {
            msg: message("a/will", "gone"),
            due_ms: 2,
            expiry: None,
            auth_name: auth.into(),
        }),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn put_message(store: &Store, client_id: &str, payload: &str) -> (u64, Op) {
    let seq = store.next_seq();
    (
        seq,
        Op::PutMessage {
            client_id: client_id.into(),
            seq,
            record: message("a/b", payload),
        },
    )
}

#[test]
fn a_new_directory_opens_empty_and_what_was_written_reads_back_after_reopening() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let (store, restored) = Store::open(&dir, Durability::Sync).expect("opens");
    assert!(restored.sessions.is_empty() && restored.retained.is_empty());
    let (s1, m1) = put_message(&store, "c1", "one");
    let (s2, m2) = put_message(&store, "c1", "two");
    let (_, m3) = put_message(&store, "c1", "three");
    let mut retained = message("a/r", "kept");
    retained.retain = true;
    let ops = vec![
        Op::PutSession {
            client_id: "c1".into(),
            record: session("alice"),
        },
        m1,
        m2,
        m3,
        Op::PutQos2 {
            client_id: "c1".into(),
            packet_id: 7,
        },
        Op::PutRetained {
            record: retained.clone(),
        },
        Op::PutRetained {
            record: message("a/gone", "x"),
        },
    ];
    block_on(store.submit(ops).wait()).expect("durable");
    let third = s2 + 1;
    block_on(
        store
            .submit(vec![
                Op::DeleteMessage {
                    client_id: "c1".into(),
                    seq: third,
                },
                Op::DeleteRetained {
                    topic: "a/gone".into(),
                },
            ])
            .wait(),
    )
    .expect("durable");
    drop(store);

    let (store, restored) = Store::open(&dir, Durability::Sync).expect("reopens");
    assert_eq!(restored.sessions.len(), 1);
    let s = &restored.sessions[0];
    assert_eq!(s.client_id, "c1");
    assert_eq!(s.record, session("alice"));
    let payloads: Vec<_> = s
        .queue
        .iter()
        .map(|(seq, m)| (*seq, m.payload.clone()))
        .collect();
    assert_eq!(payloads, vec![(s1, b"one".to_vec()), (s2, b"two".to_vec())]);
    assert_eq!(s.qos2_in, vec![7]);
    assert_eq!(restored.retained, vec![retained]);
    // Sequence numbers continue above what is stored (a deleted one may be
    // reused: nothing refers to it any more).
    assert!(store.next_seq() > s2);
}

#[test]
fn deleting_a_session_removes_its_queue_and_qos2_state_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(tmp.path(), Durability::Sync).expect("opens");
    let mut ops = Vec::new();
    for id in ["c1", "c2"] {
        ops.push(Op::PutSession {
            client_id: id.into(),
            record: session(id),
        });
        ops.push(put_message(&store, id, id).1);
        ops.push(Op::PutQos2 {
            client_id: id.into(),
            packet_id: 1,
        });
    }
    ops.push(Op::DeleteSession {
        client_id: "c1".into(),
    });
    block_on(store.submit(ops).wait()).expect("durable");
    drop(store);
    let (_, restored) = Store::open(tmp.path(), Durability::Sync).expect("reopens");
    assert_eq!(restored.sessions.len(), 1);
    assert_eq!(restored.sessions[0].client_id, "c2");
    assert_eq!(restored.sessions[0].queue.len(), 1);
    assert!(restored.orphans.is_empty() && restored.orphan_qos2.is_empty());
}

fn open_will(topic: &str) -> OpenWillRecord {
    OpenWillRecord {
        msg: message(topic, "offline"),
        delay: 5,
        expiry: Some(60),
        auth_name: "alice".into(),
    }
}

#[test]
fn open_connections_wills_read_back_with_their_session_or_alone_and_go_with_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(tmp.path(), Durability::Sync).expect("opens");
    let mut ops = Vec::new();
    for id in ["kept", "ended"] {
        ops.push(Op::PutSession {
            client_id: id.into(),
            record: session(id),
        });
        ops.push(Op::PutOpenWill {
            client_id: id.into(),
            record: open_will(&format!("status/{id}")),
        });
    }
    for id in ["alone", "discarded"] {
        ops.push(Op::PutOpenWill {
            client_id: id.into(),
            record: open_will(&format!("status/{id}")),
        });
    }
    ops.push(Op::DeleteSession {
        client_id: "ended".into(),
    });
    ops.push(Op::DeleteOpenWill {
        client_id: "discarded".into(),
    });
    block_on(store.submit(ops).wait()).expect("durable");
    drop(store);
    let (_, restored) = Store::open(tmp.path(), Durability::Sync).expect("reopens");
    assert_eq!(restored.sessions.len(), 1);
    assert_eq!(
        restored.sessions[0].open_will,
        Some(open_will("status/kept"))
    );
    assert_eq!(
        restored.open_wills,
        vec![("alone".to_string(), open_will("status/alone"))]
    );
}

#[test]
fn a_failing_writer_fails_the_callers_and_commits_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(tmp.path(), Durability::Sync).expect("opens");
    store.fail_writes(true);
    let put = Op::PutSession {
        client_id: "c".into(),
        record: session("c"),
    };
    let failed = block_on(store.submit(vec![put.clone()]).wait());
    assert!(matches!(failed, Err(StoreError::Failed(_))), "{failed:?}");
    store.fail_writes(false);
    drop(store);
    let (_, restored) = Store::open(tmp.path(), Durability::Sync).expect("reopens");
    assert!(restored.sessions.is_empty());
}

#[test]
fn messages_written_after_their_session_ended_are_not_restored_and_are_cleaned_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(tmp.path(), Durability::Sync).expect("opens");
    let (_, m) = put_message(&store, "gone", "late");
    block_on(store.submit(vec![m]).wait()).expect("durable");
    drop(store);
    let (store, restored) = Store::open(tmp.path(), Durability::Sync).expect("reopens");
    assert!(restored.sessions.is_empty());
    assert_eq!(restored.orphans.len(), 1);
    drop(store);
    let (_, restored) = Store::open(tmp.path(), Durability::Sync).expect("reopens");
    assert!(restored.orphans.is_empty());
}

#[test]
fn relaxed_durability_still_writes_everything_by_close() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let relaxed = Durability::Relaxed {
        window: std::time::Duration::from_secs(3600),
    };
    let (store, _) = Store::open(tmp.path(), relaxed).expect("opens");
    let ops = vec![Op::PutSession {
        client_id: "c".into(),
        record: session("a"),
    }];
    block_on(store.submit(ops).wait()).expect("committed");
    drop(store);
    let (_, restored) = Store::open(tmp.path(), Durability::Sync).expect("reopens");
    assert_eq!(restored.sessions.len(), 1);
}

#[test]
fn a_directory_holding_other_files_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("notes.txt"), "mine").expect("write");
    let err = Store::open(tmp.path(), Durability::Sync)
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert!(!tmp.path().join(schema::FILE).exists());
}

#[test]
fn a_store_file_that_is_not_a_database_is_refused_as_damaged_and_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join(schema::FILE);
    let junk = vec![0x5au8; 8192];
    std::fs::write(&file, &junk).expect("write");
    let err = Store::open(tmp.path(), Durability::Sync)
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    assert_eq!(std::fs::read(&file).expect("read"), junk);
}

#[test]
fn a_database_of_another_program_is_refused_as_foreign() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let db = redb::Database::create(tmp.path().join(schema::FILE)).expect("create");
        let tx = db.begin_write().expect("tx");
        {
            let t: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("other");
            tx.open_table(t)
                .expect("table")
                .insert("k", 1)
                .expect("insert");
        }
        tx.commit().expect("commit");
    }
    let err = Store::open(tmp.path(), Durability::Sync)
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
}

#[test]
fn a_store_of_another_format_version_is_refused() {
    // Newer, and older than the oldest this version migrates (1).
    for found in [99u32, 0] {
        let tmp = tempfile::tempdir().expect("tempdir");
        drop(Store::open(tmp.path(), Durability::Sync).expect("creates"));
        {
            let db = redb::Database::open(tmp.path().join(schema::FILE)).expect("open");
            let tx = db.begin_write().expect("tx");
            tx.open_table(schema::META)
                .expect("meta")
                .insert("version", &found.to_be_bytes()[..])
                .expect("insert");
            tx.commit().expect("commit");
        }
        let err = Store::open(tmp.path(), Durability::Sync)
            .err()
            .expect("refused");
        assert!(
            matches!(err, StoreError::UnsupportedVersion { found: f, .. } if f == found),
            "{err}"
        );
        assert!(err.to_string().contains("nothing was changed"), "{err}");
    }
}

#[test]
fn a_record_that_does_not_decode_makes_the_store_damaged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    drop(Store::open(tmp.path(), Durability::Sync).expect("creates"));
    {
        let db = redb::Database::open(tmp.path().join(schema::FILE)).expect("open");
        let tx = db.begin_write().expect("tx");
        tx.open_table(schema::SESSIONS)
            .expect("sessions")
            .insert("c", &[0xffu8, 0xff, 0xff][..])
            .expect("insert");
        tx.commit().expect("commit");
    }
    let err = Store::open(tmp.path(), Durability::Sync)
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("session `c`"), "{err}");
}

#[test]
fn a_store_in_use_by_another_handle_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_store, _) = Store::open(tmp.path(), Durability::Sync).expect("opens");
    let err = Store::open(tmp.path(), Durability::Sync)
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
}

#[test]
fn a_creation_interrupted_before_the_rename_is_started_over() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("broker-state.redb.new"), b"half").expect("write");
    let (_, restored) = Store::open(tmp.path(), Durability::Sync).expect("opens");
    assert!(restored.sessions.is_empty());
    assert!(!tmp.path().join("broker-state.redb.new").exists());
}

fn sent(packet_id: u16, state: record::OutboundState) -> record::OutboundRecord {
    record::OutboundRecord { packet_id, state }
}

#[test]
fn the_outbound_state_of_sent_copies_reads_back_after_reopening_and_goes_with_them() {
    use record::OutboundState::{PublishSent, PubrelSent};
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(tmp.path(), Durability::Sync).expect("opens");
    let (s1, m1) = put_message(&store, "c1", "one");
    let (s2, m2) = put_message(&store, "c1", "two");
    let (s3, m3) = put_message(&store, "c1", "three");
    let put = |seq, record| Op::PutOutbound {
        client_id: "c1".into(),
        seq,
        record,
    };
    let ops = vec![
        Op::PutSession {
            client_id: "c1".into(),
            record: session("alice"),
        },
        m1,
        m2,
        m3,
        put(s1, sent(5, PublishSent)),
        put(s2, sent(6, PublishSent)),
        put(s3, sent(7, PublishSent)),
    ];
    block_on(store.submit(ops).wait()).expect("durable");
    // PUBREC for the first: its PUBREL is stored over the PUBLISH state; the
    // third is complete (PUBCOMP) and leaves with its state.
    let done = vec![
        put(s1, sent(5, PubrelSent)),
        Op::DeleteMessage {
            client_id: "c1".into(),
            seq: s3,
        },
        Op::DeleteOutbound {
            client_id: "c1".into(),
            seq: s3,
        },
    ];
    block_on(store.submit(done).wait()).expect("durable");
    drop(store);

    let (store, restored) = Store::open(tmp.path(), Durability::Sync).expect("reopens");
    let s = &restored.sessions[0];
    assert_eq!(s.queue.len(), 2);
    assert_eq!(
        s.outbound.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
        vec![(s1, sent(5, PubrelSent)), (s2, sent(6, PublishSent))]
    );
    assert!(restored.orphan_outbound.is_empty());
    // The session's end takes the outbound state with its queue.
    block_on(
        store
            .submit(vec![Op::DeleteSession {
                client_id: "c1".into(),
            }])
            .wait(),
    )
    .expect("durable");
    drop(store);
    let db = redb::Database::open(tmp.path().join(schema::FILE)).expect("open");
    let tx = redb::ReadableDatabase::begin_read(&db).expect("tx");
    let t = tx.open_table(schema::OUTBOUND).expect("outbound");
    assert_eq!(redb::ReadableTableMetadata::len(&t).expect("len"), 0);
}

#[test]
fn an_outbound_state_whose_copy_is_gone_is_not_restored_and_is_cleaned_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(tmp.path(), Durability::Sync).expect("opens");
    let ops = vec![
        Op::PutSession {
            client_id: "c1".into(),
            record: session("alice"),
        },
        Op::PutOutbound {
            client_id: "c1".into(),
            seq: 42,
            record: sent(1, record::OutboundState::PublishSent),
        },
    ];
    block_on(store.submit(ops).wait()).expect("durable");
    drop(store);
    let (store, restored) = Store::open(tmp.path(), Durability::Sync).expect("reopens");
    assert!(restored.sessions[0].outbound.is_empty());
    assert_eq!(restored.orphan_outbound, vec![("c1".to_string(), 42)]);
    drop(store);
    let (_, restored) = Store::open(tmp.path(), Durability::Sync).expect("reopens");
    assert!(restored.orphan_outbound.is_empty());
}

#[test]
fn format_1_and_2_stores_are_migrated_at_open_and_keep_what_they_held() {
    for old in [1u32, 2] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(tmp.path(), Durability::Sync).expect("creates");
        let (seq, m) = put_message(&store, "c1", "kept");
        let ops = vec![
            Op::PutSession {
                client_id: "c1".into(),
                record: session("alice"),
            },
            m,
        ];
        block_on(store.submit(ops).wait()).expect("durable");
        drop(store);
        // What such a store is: version 1 has neither the outbound nor the
        // open wills table, version 2 no open wills table.
        {
            let db = redb::Database::open(tmp.path().join(schema::FILE)).expect("open");
            let tx = db.begin_write().expect("tx");
            if old == 1 {
                tx.delete_table(schema::OUTBOUND).expect("delete");
            }
            tx.delete_table(schema::OPEN_WILLS).expect("delete");
            tx.open_table(schema::META)
                .expect("meta")
                .insert("version", &old.to_be_bytes()[..])
                .expect("insert");
            tx.commit().expect("commit");
        }
        let (store, restored) = Store::open(tmp.path(), Durability::Sync).expect("migrates");
        assert_eq!(restored.sessions[0].queue[0].0, seq, "from {old}");
        drop(store);
        let db = redb::Database::open(tmp.path().join(schema::FILE)).expect("open");
        let tx = redb::ReadableDatabase::begin_read(&db).expect("tx");
        let meta = tx.open_table(schema::META).expect("meta");
        let version = meta.get("version").expect("get").expect("version");
        assert_eq!(version.value(), &schema::FORMAT_VERSION.to_be_bytes()[..]);
        assert!(tx.open_table(schema::OUTBOUND).is_ok());
        assert!(tx.open_table(schema::OPEN_WILLS).is_ok());
    }
}
