//! Leases in the state database, on PostgreSQL and SQLite: one holder at a time, takeover
//! after expiry with a new fence, and a stale holder can neither renew nor finish.

use std::time::Duration;

use mttx_migrations::Location;
use mttx_state::State;
use serde_json::json;
use sqlx::PgPool;

use crate::oracle::location;

async fn exercise(state: &State) {
    let items: Vec<(String, serde_json::Value)> = (0..3)
        .map(|i| (format!("job/r{i}"), json!({ "start": i })))
        .collect();
    state.add_leases(&items).await.unwrap();
    // Adding again changes nothing.
    state.add_leases(&items).await.unwrap();
    assert_eq!(state.lease_counts("job/").await.unwrap(), (3, 0));

    let a = state.claim("job/", "a", 60).await.unwrap().unwrap();
    let b = state.claim("job/", "b", 60).await.unwrap().unwrap();
    let c = state.claim("job/", "c", 1).await.unwrap().unwrap();
    assert_eq!((a.name.as_str(), b.name.as_str()), ("job/r0", "job/r1"));
    assert_eq!(a.payload, Some(json!({ "start": 0 })));
    assert!(
        state.claim("job/", "d", 60).await.unwrap().is_none(),
        "all held"
    );

    assert!(state.release(&a, "a", true).await.unwrap());
    assert!(
        !state.release(&b, "not-b", true).await.unwrap(),
        "only the holder"
    );
    assert_eq!(state.lease_counts("job/").await.unwrap(), (3, 1));

    // c's lease expires; d takes it over with a new fence; c can no longer renew or finish.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let d = state.claim("job/", "d", 60).await.unwrap().unwrap();
    assert_eq!(d.name, c.name);
    assert!(d.fence > c.fence);
    assert!(!state.renew(&c, "c", 60).await.unwrap());
    assert!(!state.release(&c, "c", true).await.unwrap());
    assert!(state.renew(&d, "d", 60).await.unwrap());
    assert!(state.release(&d, "d", true).await.unwrap());
    assert!(state.release(&b, "b", true).await.unwrap());
    assert_eq!(state.lease_counts("job/").await.unwrap(), (3, 3));
    assert!(
        state.claim("job/", "e", 60).await.unwrap().is_none(),
        "all done"
    );

    // A named lease (the lead of the incremental ETL): held, renewable by its holder,
    // free again once released.
    let lead = state.claim_named("lead/t", "x", 60).await.unwrap().unwrap();
    assert!(
        state
            .claim_named("lead/t", "y", 60)
            .await
            .unwrap()
            .is_none()
    );
    let again = state.claim_named("lead/t", "x", 60).await.unwrap().unwrap();
    assert_eq!(
        again.fence, lead.fence,
        "re-claiming one's own lease keeps the fence"
    );
    assert!(state.release(&again, "x", false).await.unwrap());
    let y = state.claim_named("lead/t", "y", 60).await.unwrap().unwrap();
    assert!(y.fence > lead.fence);
}

#[sqlx::test(migrations = false)]
async fn leases_on_postgres(pool: PgPool) {
    let state = State::open(&location(&pool).await).await.unwrap();
    exercise(&state).await;
}

#[tokio::test]
async fn leases_on_sqlite() {
    let dir = mttx_fixtures::testing::scratch("leases").unwrap();
    let state = State::open(&Location::Sqlite(dir.join("state.sqlite")))
        .await
        .unwrap();
    exercise(&state).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many claimers racing on PostgreSQL: every lease is handed out exactly once.
#[sqlx::test(migrations = false)]
async fn concurrent_claims_hand_out_each_lease_once(pool: PgPool) {
    let state = State::open(&location(&pool).await).await.unwrap();
    let items: Vec<(String, serde_json::Value)> = (0..40)
        .map(|i| (format!("race/{i:03}"), json!(null)))
        .collect();
    state.add_leases(&items).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..6 {
        let state = state.clone();
        tasks.spawn(async move {
            let mut got = Vec::new();
            while let Some(l) = state.claim("race/", &format!("w{w}"), 60).await.unwrap() {
                got.push(l.name);
            }
            got
        });
    }
    let mut all: Vec<String> = tasks.join_all().await.into_iter().flatten().collect();
    all.sort();
    let want: Vec<String> = items.into_iter().map(|i| i.0).collect();
    assert_eq!(all, want);
}

/// Tokens on both state backends: scope, use, listing and revocation read back alike.
async fn tokens(state: &State) {
    let t = state.create_token(5, "api", Some(3600)).await.unwrap();
    let d = state
        .create_scoped_token(5, "screen", None, mttx_state::Scope::Dashboard)
        .await
        .unwrap();
    assert_eq!(
        state.check_token(&t).await.unwrap(),
        mttx_state::TokenCheck::Account(5, mttx_state::Scope::Api)
    );
    assert_eq!(
        state.check_token(&d).await.unwrap(),
        mttx_state::TokenCheck::Account(5, mttx_state::Scope::Dashboard)
    );
    let listed = state.list_tokens(5).await.unwrap();
    assert_eq!(listed.len(), 2);
    let api = &listed[0];
    assert_eq!((api.name.as_str(), api.scope.as_str()), ("api", "api"));
    assert!(api.last_used_at.is_some() && api.revoked_at.is_none());
    let hours = (api.expires_at.unwrap() - api.created_at).num_minutes();
    assert!((59..=61).contains(&hours), "{api:?}");
    assert_eq!(listed[1].expires_at, None);
    // A session opened with the token signs in as it; it ends when closed, and a session
    // of a revoked token is refused.
    let id = state.open_session(&t, 3600).await.unwrap().unwrap();
    assert_eq!(id.len(), 64);
    assert_eq!(
        state.check_session(&id).await.unwrap(),
        mttx_state::TokenCheck::Account(5, mttx_state::Scope::Api)
    );
    assert!(state.close_session(&id).await.unwrap());
    assert_eq!(
        state.check_session(&id).await.unwrap(),
        mttx_state::TokenCheck::Unknown
    );
    assert_eq!(state.open_session("mttx_nope", 3600).await.unwrap(), None);
    let kept = state.open_session(&t, 3600).await.unwrap().unwrap();
    let short = state.open_session(&t, -1).await.unwrap().unwrap();
    assert_eq!(
        state.check_session(&short).await.unwrap(),
        mttx_state::TokenCheck::Expired
    );
    let revoked = state.revoke_token(api.id).await.unwrap().unwrap();
    assert_eq!(
        state.check_session(&kept).await.unwrap(),
        mttx_state::TokenCheck::Revoked
    );
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        state.check_token(&t).await.unwrap(),
        mttx_state::TokenCheck::Revoked
    );
    assert!(state.list_tokens(6).await.unwrap().is_empty());
}

#[sqlx::test(migrations = false)]
async fn tokens_on_postgres(pool: PgPool) {
    tokens(&State::open(&location(&pool).await).await.unwrap()).await;
}

#[tokio::test]
async fn tokens_on_sqlite() {
    let dir = mttx_fixtures::testing::scratch("tokens").unwrap();
    tokens(
        &State::open(&Location::Sqlite(dir.join("state.sqlite")))
            .await
            .unwrap(),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
