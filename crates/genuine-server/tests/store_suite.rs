//! One store test suite, run against every `Store` backend: SQLite on a file,
//! SQLite in memory, and PostgreSQL when `GENUINE_TEST_DATABASE_URL` is set
//! (e.g. `postgres://postgres@127.0.0.1:5432/test`). Each PostgreSQL test
//! works in its own fresh schema, dropped at the end. PostgreSQL-only tests
//! cover what SQLite cannot show: change notifications, several nodes on one
//! database, and concurrent writers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::{Duration, Instant};

use genuine_server::store::{
    AccountRow, AdminTokenRow, ApiRow, AppAttestKeyRow, AppPlatformRow, ChangeListener, CountKey,
    DeviceRow, KeyRow, PostgresStore, RegistrationRow, SqliteStore, Store, StoreError,
};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

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

    // Platform settings per (app, kind), replaced whole.
    let plat = |app: &str, kind: &str, settings: &str, secret: Option<Vec<u8>>| AppPlatformRow {
        account: "a".into(),
        app_id: app.into(),
        kind: kind.into(),
        settings: settings.into(),
        secret_enc: secret,
        updated_at: 20,
    };
    assert!(store.app_platforms("a").await.unwrap().is_empty());
    store
        .put_app_platform(&plat("app", "play", "{}", Some(vec![9; 60])))
        .await
        .unwrap();
    store
        .put_app_platform(&plat("app", "play", r#"{"p":1}"#, Some(vec![8; 60])))
        .await
        .unwrap();
    store
        .put_app_platform(&plat("app", "apple", r#"{"t":1}"#, None))
        .await
        .unwrap();
    store
        .put_app_platform(&plat("app2", "android", "{}", None))
        .await
        .unwrap();
    assert_eq!(
        store.app_platforms("a").await.unwrap(),
        vec![
            plat("app", "apple", r#"{"t":1}"#, None),
            plat("app", "play", r#"{"p":1}"#, Some(vec![8; 60])),
            plat("app2", "android", "{}", None),
        ]
    );
    assert!(store.app_platforms("other").await.unwrap().is_empty());
    assert!(
        store
            .delete_app_platform("a", "app2", "android")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_app_platform("a", "app2", "android")
            .await
            .unwrap()
    );
    assert_eq!(store.app_platforms("a").await.unwrap().len(), 2);
    assert!(matches!(
        store
            .put_app_platform(&AppPlatformRow {
                account: "nobody".into(),
                ..plat("app", "apple", "{}", None)
            })
            .await,
        Err(StoreError::NotFound)
    ));

    // App Attest keys per device; the counter only moves up, for its key.
    let aak = |key: u8, counter: i64| AppAttestKeyRow {
        account: "a".into(),
        device_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        app_id: "app".into(),
        key_id: vec![key; 32],
        public_key: vec![4; 65],
        counter,
        environment: "production".into(),
        created_at: 30,
        updated_at: 30,
    };
    let dev = "AAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(store.appattest_key("a", dev).await.unwrap(), None);
    store.put_appattest_key(&aak(1, 0)).await.unwrap();
    assert_eq!(
        store.appattest_key("a", dev).await.unwrap(),
        Some(aak(1, 0))
    );
    assert!(
        store
            .advance_appattest_counter("a", dev, &[1; 32], 3, 31)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_appattest_counter("a", dev, &[1; 32], 3, 32)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_appattest_counter("a", dev, &[1; 32], 2, 32)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_appattest_counter("a", dev, &[2; 32], 9, 32)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_appattest_counter("b", dev, &[1; 32], 9, 32)
            .await
            .unwrap()
    );
    let row = store.appattest_key("a", dev).await.unwrap().unwrap();
    assert_eq!((row.counter, row.updated_at), (3, 31));
    // A new attestation replaces the device's key and resets the counter.
    store.put_appattest_key(&aak(2, 0)).await.unwrap();
    assert_eq!(
        store.appattest_key("a", dev).await.unwrap(),
        Some(aak(2, 0))
    );
    assert!(
        !store
            .advance_appattest_counter("a", dev, &[1; 32], 9, 33)
            .await
            .unwrap()
    );
    assert_eq!(store.appattest_key("other", dev).await.unwrap(), None);
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
    assert_eq!(store.app_platforms("a").await.unwrap().len(), 2);
    assert_eq!(
        store
            .appattest_key("a", "AAAAAAAAAAAAAAAAAAAAAA")
            .await
            .unwrap()
            .map(|k| k.key_id),
        Some(vec![2; 32])
    );
}

#[tokio::test]
async fn sqlite_in_memory() {
    suite(&SqliteStore::in_memory().await.unwrap()).await;
}

// --- PostgreSQL -------------------------------------------------------------

/// Runs `body` with the URL of a fresh schema of the test database, then drops
/// the schema (also when `body` panics). Without `GENUINE_TEST_DATABASE_URL`,
/// says the test was skipped and returns.
async fn with_pg<F, Fut>(test: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(base) = std::env::var("GENUINE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: GENUINE_TEST_DATABASE_URL not set (test {test})");
        return;
    };
    let mut random = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).unwrap();
    let schema = format!("genuine_t_{}", data_encoding::HEXLOWER.encode(&random));
    let mut admin = PgConnection::connect(&base).await.unwrap();
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    // `options=-c search_path=<schema>`, URL-encoded.
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let outcome = tokio::spawn(body(url)).await;
    admin
        .execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await
        .unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn postgres() {
    with_pg("postgres", |url| async move {
        let store = PostgresStore::connect(&url, 4).await.unwrap();
        suite(&store).await;
        store.close().await;
        // Everything is still there through a new pool (and migrations run again harmlessly).
        let store = PostgresStore::connect(&url, 4).await.unwrap();
        after_reopen(&store).await;
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn postgres_nodes_start_at_once() {
    with_pg("postgres_nodes_start_at_once", |url| async move {
        // Both migrate the empty schema at once: the migrator's advisory lock
        // lets one apply the migrations and the other find them applied.
        let (a, b, c) = tokio::join!(
            PostgresStore::connect(&url, 2),
            PostgresStore::connect(&url, 2),
            PostgresStore::connect(&url, 2)
        );
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        let acct = AccountRow {
            name: "a".into(),
            policy: "{}".into(),
            created_at: 1,
        };
        a.create_account(&acct).await.unwrap();
        assert_eq!(b.account("a").await.unwrap(), Some(acct.clone()));
        assert_eq!(c.account("a").await.unwrap(), Some(acct));
    })
    .await;
}

/// The next notification naming one of `names`, skipping the others (the
/// channel is database-wide, so tests running at once see each other's).
async fn next_of(listener: &mut ChangeListener, names: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = tokio::time::timeout(left, listener.next())
            .await
            .unwrap_or_else(|_| panic!("no notification for {names:?}"))
            .unwrap()
            .expect("listener connection lost");
        if names.contains(&got.as_str()) {
            return got;
        }
    }
}

#[tokio::test]
async fn postgres_change_notifications() {
    with_pg("postgres_change_notifications", |url| async move {
        // Names unique to this run: other tests share the channel.
        let mut random = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).unwrap();
        let tag = data_encoding::HEXLOWER.encode(&random);
        let acct = format!("n-{tag}");
        let marker = format!("m-{tag}");
        let a = acct.as_str();
        let names = [a, marker.as_str()];

        let node1 = PostgresStore::connect(&url, 2).await.unwrap();
        let node2 = PostgresStore::connect(&url, 2).await.unwrap();
        let mut listener = node1.change_listener().await.unwrap();

        // Every write to cached account state, made on node 2, reaches node 1.
        node2
            .create_account(&AccountRow {
                name: acct.clone(),
                policy: "{}".into(),
                created_at: 1,
            })
            .await
            .unwrap();
        assert_eq!(next_of(&mut listener, &names).await, acct);
        node2.set_policy(a, r#"{"x":1}"#).await.unwrap();
        assert_eq!(next_of(&mut listener, &names).await, acct);
        assert!(node2.set_policy_if(a, r#"{"x":1}"#, "{}").await.unwrap());
        assert_eq!(next_of(&mut listener, &names).await, acct);
        let api = ApiRow {
            account: acct.clone(),
            domain: "api.x".into(),
            alg: "ES256".into(),
            ttl_secs: 300,
            created_at: 10,
        };
        let key = |kid: &str| KeyRow {
            account: acct.clone(),
            ..key(kid, "api.x", "signing")
        };
        node2.insert_api(&api, &[key("k1")]).await.unwrap();
        assert_eq!(next_of(&mut listener, &names).await, acct);
        node2.rotate_key(&key("k2"), 20, 320).await.unwrap();
        assert_eq!(next_of(&mut listener, &names).await, acct);
        let registration = RegistrationRow {
            account: acct.clone(),
            ..reg(&format!("r-{tag}"), "app", None)
        };
        node2.insert_registration(&registration).await.unwrap();
        assert_eq!(next_of(&mut listener, &names).await, acct);
        assert!(
            node2
                .delete_registration(a, &registration.id)
                .await
                .unwrap()
        );
        assert_eq!(next_of(&mut listener, &names).await, acct);
        let device = DeviceRow {
            account: acct.clone(),
            device_id: "d".into(),
            action: "block".into(),
            note: None,
            updated_at: 1,
        };
        node2.upsert_device(&device).await.unwrap();
        assert_eq!(next_of(&mut listener, &names).await, acct);
        assert!(node2.delete_device(a, "d").await.unwrap());
        assert_eq!(next_of(&mut listener, &names).await, acct);
        let platform = AppPlatformRow {
            account: acct.clone(),
            app_id: "app".into(),
            kind: "apple".into(),
            settings: "{}".into(),
            secret_enc: None,
            updated_at: 1,
        };
        node2.put_app_platform(&platform).await.unwrap();
        assert_eq!(next_of(&mut listener, &names).await, acct);
        assert!(node2.delete_app_platform(a, "app", "apple").await.unwrap());
        assert_eq!(next_of(&mut listener, &names).await, acct);
        assert!(node2.delete_api(a, "api.x").await.unwrap());
        assert_eq!(next_of(&mut listener, &names).await, acct);

        // Writes that change nothing, or fail, announce nothing: the next
        // notification is the marker's (notifications arrive in commit order).
        assert!(!node2.set_policy_if(a, r#"{"x":1}"#, "{}").await.unwrap());
        assert!(!node2.delete_api(a, "api.x").await.unwrap());
        assert!(!node2.delete_device(a, "d").await.unwrap());
        assert!(!node2.delete_registration(a, "none").await.unwrap());
        assert!(!node2.delete_app_platform(a, "app", "apple").await.unwrap());
        // App Attest key state is read per attestation, never cached: no notice.
        node2
            .put_appattest_key(&AppAttestKeyRow {
                account: acct.clone(),
                device_id: "d".into(),
                app_id: "app".into(),
                key_id: vec![1; 32],
                public_key: vec![4; 65],
                counter: 0,
                environment: "production".into(),
                created_at: 1,
                updated_at: 1,
            })
            .await
            .unwrap();
        assert!(
            node2
                .advance_appattest_counter(a, "d", &[1; 32], 1, 2)
                .await
                .unwrap()
        );
        assert!(node2.rotate_key(&key("k3"), 30, 330).await.is_err());
        assert!(
            node2
                .insert_api(&api, &[key("k4"), key("k4")])
                .await
                .is_err()
        );
        node2
            .add_counts(&[(
                CountKey {
                    account: acct.clone(),
                    hour: 1,
                    outcome: "valid".into(),
                    reason: String::new(),
                },
                1,
            )])
            .await
            .unwrap();
        node2.put_sketch(a, "day", 1, &[1]).await.unwrap();
        node2
            .create_account(&AccountRow {
                name: marker.clone(),
                policy: "{}".into(),
                created_at: 1,
            })
            .await
            .unwrap();
        assert_eq!(next_of(&mut listener, &names).await, marker);
    })
    .await;
}

#[tokio::test]
async fn postgres_lost_listener_connection() {
    with_pg("postgres_lost_listener_connection", |url| async move {
        let mut random = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).unwrap();
        let app = format!("genuine_t_{}", data_encoding::HEXLOWER.encode(&random));
        let store = PostgresStore::connect(&format!("{url}&application_name={app}"), 2)
            .await
            .unwrap();
        let mut listener = store.change_listener().await.unwrap();
        let mut admin = PgConnection::connect(&url).await.unwrap();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(&app)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(killed, vec![true], "the listener's one connection");
        // Reported, not hidden behind a silent reconnection: the caller must
        // assume it missed changes, reload and listen again.
        let got = tokio::time::timeout(Duration::from_secs(10), listener.next())
            .await
            .expect("the loss is noticed");
        assert!(matches!(got, Ok(None)), "{got:?}");
        // A new listener works.
        let mut listener = store.change_listener().await.unwrap();
        store
            .create_account(&AccountRow {
                name: app.clone(),
                policy: "{}".into(),
                created_at: 1,
            })
            .await
            .unwrap();
        assert_eq!(next_of(&mut listener, &[app.as_str()]).await, app);
        admin.close().await.unwrap();
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn postgres_concurrent_nodes() {
    with_pg("postgres_concurrent_nodes", |url| async move {
        let node1 = PostgresStore::connect(&url, 4).await.unwrap();
        let node2 = PostgresStore::connect(&url, 4).await.unwrap();
        node1
            .create_account(&AccountRow {
                name: "a".into(),
                policy: "p0".into(),
                created_at: 1,
            })
            .await
            .unwrap();
        node1
            .insert_api(
                &ApiRow {
                    account: "a".into(),
                    domain: "api.x".into(),
                    alg: "ES256".into(),
                    ttl_secs: 300,
                    created_at: 1,
                },
                &[key("k0", "api.x", "signing"), key("d0", "api.x", "decoy")],
            )
            .await
            .unwrap();

        // Two nodes rotating at once: both rotations apply, one after the
        // other, and exactly one signing key stays active.
        for round in 0..20 {
            let (new1, new2) = (
                key(&format!("k{round}a"), "api.x", "signing"),
                key(&format!("k{round}b"), "api.x", "signing"),
            );
            let (r1, r2) = tokio::join!(
                node1.rotate_key(&new1, round, 999),
                node2.rotate_key(&new2, round, 999),
            );
            r1.unwrap();
            r2.unwrap();
            let keys = node1.keys("a").await.unwrap();
            let signing: Vec<_> = keys.iter().filter(|k| k.purpose == "signing").collect();
            assert_eq!(signing.len(), 1 + 2 * (round as usize + 1));
            let active: Vec<_> = signing.iter().filter(|k| k.retired_at.is_none()).collect();
            assert_eq!(active.len(), 1, "round {round}: {active:?}");
            assert!(active[0].kid.starts_with(&format!("k{round}")));
        }

        // Two compare-and-sets from the same expectation: exactly one wins.
        for round in 0..20 {
            let expected = node1.account("a").await.unwrap().unwrap().policy;
            let (p1, p2) = (format!("p{round}-1"), format!("p{round}-2"));
            let (w1, w2) = tokio::join!(
                node1.set_policy_if("a", &expected, &p1),
                node2.set_policy_if("a", &expected, &p2),
            );
            let (w1, w2) = (w1.unwrap(), w2.unwrap());
            assert!(w1 ^ w2, "round {round}: exactly one wins ({w1}, {w2})");
            let stored = node2.account("a").await.unwrap().unwrap().policy;
            assert_eq!(stored, if w1 { p1 } else { p2 });
        }

        // Two nodes proposing a shared secret at once agree on one.
        for round in 0..10 {
            let name = format!("s{round}");
            let (s1, s2) = tokio::join!(
                node1.shared_secret(&name, &[1; 32]),
                node2.shared_secret(&name, &[2; 32]),
            );
            let (s1, s2) = (s1.unwrap(), s2.unwrap());
            assert_eq!(s1, s2);
            assert!(s1 == vec![1; 32] || s1 == vec![2; 32]);
        }

        // Nodes flushing the same counter cells in opposite orders neither
        // deadlock nor lose counts.
        let cells: Vec<(CountKey, i64)> = (0..50)
            .map(|i| {
                (
                    CountKey {
                        account: "a".into(),
                        hour: 100 + i / 10,
                        outcome: "valid".into(),
                        reason: format!("r{}", i % 10),
                    },
                    1,
                )
            })
            .collect();
        let reversed: Vec<_> = cells.iter().rev().cloned().collect();
        for _ in 0..10 {
            let (c1, c2) = tokio::join!(node1.add_counts(&cells), node2.add_counts(&reversed));
            c1.unwrap();
            c2.unwrap();
        }
        let counts = node1.counts_since("a", 0).await.unwrap();
        assert_eq!(counts.len(), 50);
        assert!(counts.iter().all(|(_, n)| *n == 20), "{counts:?}");

        node1.close().await;
        node2.close().await;
    })
    .await;
}

#[tokio::test]
async fn postgres_errors_hide_the_password() {
    // Nothing listens on port 1: the connection is refused at once.
    let started = Instant::now();
    let err = PostgresStore::connect("postgres://genuine:s3cret-pw@127.0.0.1:1/genuine", 2)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an outage fails fast: {:?}",
        started.elapsed()
    );
    let err = PostgresStore::connect("postgres://genuine:s3cret-pw@127.0.0.1:99999/g", 2)
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"), "{err:?}");
}
