//! One store test suite, run against every `Store` backend: SQLite on a file
//! and SQLite in memory today; PostgreSQL joins with cluster mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use genuine_server::store::{
    AccountRow, AdminTokenRow, ApiRow, CountKey, DeviceRow, KeyRow, RegistrationRow, SqliteStore,
    Store, StoreError,
};

fn key(kid: &str, domain: &str, purpose: &str) -> KeyRow {
    KeyRow {
        kid: kid.into(),
        account: "a".into(),
        domain: domain.into(),
        purpose: purpose.into(),
        alg: "ES256".into(),
        private_enc: vec![1, 2, 3],
        created_at: 10,
        retired_at: None,
        publish_until: None,
    }
}

fn reg(id: &str, app: &str, expires_at: Option<i64>) -> RegistrationRow {
    RegistrationRow {
        id: id.into(),
        account: "a".into(),
        app_id: app.into(),
        platform: "linux".into(),
        alg: "elf-exec-segments-sha256/v1".into(),
        digest: vec![7; 32],
        version: Some("1.0".into()),
        created_at: 5,
        expires_at,
    }
}

/// The suite: every behaviour the service relies on.
async fn suite(store: &dyn Store) {
    store.ping().await.unwrap();

    // Accounts and policy.
    let acct = AccountRow {
        name: "a".into(),
        policy: "{}".into(),
        created_at: 1,
    };
    store.create_account(&acct).await.unwrap();
    assert!(matches!(
        store.create_account(&acct).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.account("a").await.unwrap(), Some(acct.clone()));
    assert_eq!(store.account("b").await.unwrap(), None);
    store
        .set_policy("a", r#"{"reveal_reasons":true}"#)
        .await
        .unwrap();
    assert_eq!(
        store.account("a").await.unwrap().unwrap().policy,
        r#"{"reveal_reasons":true}"#
    );
    assert!(matches!(
        store.set_policy("b", "{}").await,
        Err(StoreError::NotFound)
    ));

    // Compare-and-set of the policy.
    assert!(
        !store.set_policy_if("a", "{}", r#"{"x":1}"#).await.unwrap(),
        "stale expectation"
    );
    assert!(
        store
            .set_policy_if("a", r#"{"reveal_reasons":true}"#, r#"{"x":1}"#)
            .await
            .unwrap()
    );
    assert_eq!(
        store.account("a").await.unwrap().unwrap().policy,
        r#"{"x":1}"#
    );
    assert!(
        !store
            .set_policy_if("a", r#"{"reveal_reasons":true}"#, "{}")
            .await
            .unwrap(),
        "the first write changed it"
    );
    assert!(matches!(
        store.set_policy_if("b", "{}", "{}").await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .set_policy_if("a", r#"{"x":1}"#, r#"{"reveal_reasons":true}"#)
            .await
            .unwrap()
    );
    store
        .create_account(&AccountRow {
            name: "other".into(),
            policy: "{}".into(),
            created_at: 1,
        })
        .await
        .unwrap();

    // Admin tokens by hash only.
    let tok = AdminTokenRow {
        id: "t1".into(),
        account: "a".into(),
        role: "admin".into(),
        token_hash: vec![9; 32],
        label: None,
        created_at: 1,
    };
    store.insert_admin_token(&tok).await.unwrap();
    assert_eq!(
        store.admin_token_by_hash(&[9; 32]).await.unwrap(),
        Some(tok.clone())
    );
    assert_eq!(store.admin_token_by_hash(&[8; 32]).await.unwrap(), None);
    assert!(
        matches!(
            store
                .insert_admin_token(&AdminTokenRow {
                    id: "t2".into(),
                    ..tok.clone()
                })
                .await,
            Err(StoreError::Conflict)
        ),
        "hash is unique"
    );
    assert!(
        store
            .insert_admin_token(&AdminTokenRow {
                id: "t3".into(),
                account: "nope".into(),
                token_hash: vec![1; 32],
                ..tok
            })
            .await
            .is_err(),
        "account must exist"
    );

    // APIs with their keys, atomically.
    let api = ApiRow {
        account: "a".into(),
        domain: "api.x".into(),
        alg: "ES256".into(),
        ttl_secs: 300,
        created_at: 10,
    };
    store
        .insert_api(
            &api,
            &[key("k1", "api.x", "signing"), key("d1", "api.x", "decoy")],
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_api(&api, &[key("k9", "api.x", "signing")])
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.keys("a").await.unwrap().len(),
        2,
        "a failed insert leaves no key behind"
    );
    let api2 = ApiRow {
        domain: "api.y".into(),
        ..api.clone()
    };
    // A key that collides makes the whole insert fail: no API row without its keys.
    assert!(
        store
            .insert_api(
                &api2,
                &[key("k2", "api.y", "signing"), key("k2", "api.y", "signing")]
            )
            .await
            .is_err()
    );
    assert_eq!(store.apis("a").await.unwrap(), vec![api.clone()]);
    assert_eq!(store.apis("other").await.unwrap(), vec![]);
    // At most one active signing key per API, as an invariant of the schema.
    assert!(matches!(
        store
            .insert_api(
                &api2,
                &[key("k3", "api.y", "signing"), key("k4", "api.y", "signing")]
            )
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.apis("a").await.unwrap(), vec![api.clone()]);

    // Rotation retires the active signing key and adds the new one, atomically.
    store
        .rotate_key(
            &KeyRow {
                created_at: 20,
                ..key("k2", "api.x", "signing")
            },
            20,
            320,
        )
        .await
        .unwrap();
    let keys = store.keys("a").await.unwrap();
    let k1 = keys.iter().find(|k| k.kid == "k1").unwrap();
    assert_eq!((k1.retired_at, k1.publish_until), (Some(20), Some(320)));
    let k2 = keys.iter().find(|k| k.kid == "k2").unwrap();
    assert_eq!(
        (k2.retired_at, k2.private_enc.clone()),
        (None, vec![1, 2, 3])
    );
    assert_eq!(
        keys.iter().find(|k| k.kid == "d1").unwrap().retired_at,
        None,
        "decoy untouched"
    );
    assert!(matches!(
        store.rotate_key(&key("k5", "nope", "signing"), 1, 2).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store.keys("a").await.unwrap().iter().all(|k| k.kid != "k5"),
        "failed rotation adds nothing"
    );

    // Deleting an API removes its keys.
    assert!(store.delete_api("a", "api.x").await.unwrap());
    assert!(!store.delete_api("a", "api.x").await.unwrap());
    assert!(store.keys("a").await.unwrap().is_empty());

    // Registrations.
    store
        .insert_registration(&reg("r1", "app.one", None))
        .await
        .unwrap();
    store
        .insert_registration(&reg("r2", "app.two", Some(99)))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_registration(&reg("r1", "app.one", None)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.registrations("a", None).await.unwrap().len(), 2);
    assert_eq!(
        store.registrations("a", Some("app.two")).await.unwrap(),
        vec![reg("r2", "app.two", Some(99))]
    );
    assert!(store.registrations("other", None).await.unwrap().is_empty());
    assert!(
        !store.delete_registration("other", "r1").await.unwrap(),
        "another account cannot delete it"
    );
    assert!(store.delete_registration("a", "r1").await.unwrap());
    assert_eq!(store.registrations("a", None).await.unwrap().len(), 1);

    // Device overrides.
    let dev = DeviceRow {
        account: "a".into(),
        device_id: "d".into(),
        action: "allow".into(),
        note: Some("n".into()),
        updated_at: 1,
    };
    store.upsert_device(&dev).await.unwrap();
    store
        .upsert_device(&DeviceRow {
            action: "block".into(),
            updated_at: 2,
            ..dev.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store.devices("a").await.unwrap(),
        vec![DeviceRow {
            action: "block".into(),
            updated_at: 2,
            ..dev
        }]
    );
    assert!(store.delete_device("a", "d").await.unwrap());
    assert!(!store.delete_device("a", "d").await.unwrap());

    // Counters add up.
    let ck = |hour: i64, reason: &str| CountKey {
        account: "a".into(),
        hour,
        outcome: "decoy".into(),
        reason: reason.into(),
    };
    store
        .add_counts(&[(ck(100, ""), 2), (ck(100, "debugger"), 1)])
        .await
        .unwrap();
    store
        .add_counts(&[(ck(100, ""), 3), (ck(101, ""), 1)])
        .await
        .unwrap();
    let mut got = store.counts_since("a", 100).await.unwrap();
    got.sort_by(|x, y| (x.0.hour, &x.0.reason).cmp(&(y.0.hour, &y.0.reason)));
    assert_eq!(
        got,
        vec![(ck(100, ""), 5), (ck(100, "debugger"), 1), (ck(101, ""), 1)]
    );
    assert_eq!(
        store.counts_since("a", 101).await.unwrap(),
        vec![(ck(101, ""), 1)]
    );
    assert!(store.counts_since("other", 0).await.unwrap().is_empty());
    // Cells repeated within one batch add up too.
    store
        .add_counts(&[(ck(102, ""), 1), (ck(102, ""), 2)])
        .await
        .unwrap();
    assert_eq!(
        store.counts_since("a", 102).await.unwrap(),
        vec![(ck(102, ""), 3)]
    );
    store.add_counts(&[]).await.unwrap();

    // Shared secrets: the first writer wins.
    assert_eq!(
        store.shared_secret("nonce", &[1; 32]).await.unwrap(),
        vec![1; 32]
    );
    assert_eq!(
        store.shared_secret("nonce", &[2; 32]).await.unwrap(),
        vec![1; 32]
    );
    assert_eq!(
        store.shared_secret("other", &[3; 16]).await.unwrap(),
        vec![3; 16]
    );

    // Device sketches are replaced whole, per (account, period, bucket).
    assert_eq!(store.sketch("a", "day", 7).await.unwrap(), None);
    store.put_sketch("a", "day", 7, &[1, 2, 3]).await.unwrap();
    store.put_sketch("a", "day", 7, &[4, 5]).await.unwrap();
    store.put_sketch("a", "day", 8, &[6]).await.unwrap();
    store.put_sketch("a", "month", 7, &[7]).await.unwrap();
    store.put_sketch("other", "day", 7, &[8]).await.unwrap();
    assert_eq!(store.sketch("a", "day", 7).await.unwrap(), Some(vec![4, 5]));
    assert_eq!(store.sketch("a", "day", 8).await.unwrap(), Some(vec![6]));
    assert_eq!(store.sketch("a", "month", 7).await.unwrap(), Some(vec![7]));
    assert_eq!(
        store.sketch("other", "day", 7).await.unwrap(),
        Some(vec![8])
    );
    store.put_sketch("a", "day", 9, &[]).await.unwrap();
    assert_eq!(store.sketch("a", "day", 9).await.unwrap(), Some(vec![]));
}

#[tokio::test]
async fn sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let store = SqliteStore::open(&path).await.unwrap();
    suite(&store).await;
    store.close().await;
    // Everything is still there after reopening (and migrations run again harmlessly).
    let store = SqliteStore::open(&path).await.unwrap();
    after_reopen(&store).await;
}

/// What `suite` left behind, seen through a store opened again.
async fn after_reopen(store: &dyn Store) {
    assert_eq!(store.registrations("a", None).await.unwrap().len(), 1);
    assert_eq!(
        store.account("a").await.unwrap().unwrap().policy,
        r#"{"reveal_reasons":true}"#
    );
    assert_eq!(
        store.shared_secret("nonce", &[9; 32]).await.unwrap(),
        vec![1; 32]
    );
    assert_eq!(store.sketch("a", "day", 7).await.unwrap(), Some(vec![4, 5]));
}

#[tokio::test]
async fn sqlite_in_memory() {
    suite(&SqliteStore::in_memory().await.unwrap()).await;
}
