//! `report_deliveries`: a delivery is claimed once, a failed one again, a sent or unknown
//! one never unless asked, on PostgreSQL and on SQLite alike.

use mttx_migrations::Location;
use mttx_state::{Claim, Delivery, Ended, State};
use sqlx::PgPool;

async fn the_claims_hold(state: &State) {
    let d = Delivery {
        account_id: 1,
        team_id: Some(7),
        week: "2026-W44",
        channel: "email",
    };
    let account = Delivery { team_id: None, ..d };
    assert_eq!(
        state.claim_delivery(d, false).await.unwrap(),
        Claim::Claimed { attempt: 1 }
    );
    // Held while it is being sent: another claim gets it as interrupted, not to send.
    assert!(matches!(
        state.claim_delivery(d, false).await.unwrap(),
        Claim::Interrupted { detail: None, .. }
    ));
    // The account's report is a delivery of its own.
    assert_eq!(
        state.claim_delivery(account, false).await.unwrap(),
        Claim::Claimed { attempt: 1 }
    );
    // Failed: claimed again, as the second attempt.
    state
        .finish_delivery(d, Ended::Failed, "451 try again later")
        .await
        .unwrap();
    let unsent = state.unsent_deliveries(1).await.unwrap();
    assert_eq!(unsent.len(), 2, "{unsent:?}");
    assert_eq!(
        (
            unsent[0].team_id,
            unsent[0].status.as_str(),
            unsent[0].detail.as_deref()
        ),
        (None, "sending", None)
    );
    assert_eq!(
        (
            unsent[1].team_id,
            unsent[1].status.as_str(),
            unsent[1].detail.as_deref()
        ),
        (Some(7), "failed", Some("451 try again later"))
    );
    assert_eq!(
        state.claim_delivery(d, false).await.unwrap(),
        Claim::Claimed { attempt: 2 }
    );
    // Sent: never claimed again, unless asked.
    state
        .finish_delivery(d, Ended::Sent, "to lead@example.com")
        .await
        .unwrap();
    let Claim::Sent { at, detail } = state.claim_delivery(d, false).await.unwrap() else {
        panic!("a sent delivery is claimed again")
    };
    assert_eq!(detail.as_deref(), Some("to lead@example.com"));
    assert!((chrono::Utc::now() - at).num_seconds().abs() < 60, "{at}");
    assert_eq!(
        state.claim_delivery(d, true).await.unwrap(),
        Claim::Claimed { attempt: 3 }
    );
    // Unknown (it may have arrived): not claimed again, unless asked.
    state
        .finish_delivery(d, Ended::Unknown, "timed out after DATA")
        .await
        .unwrap();
    assert!(matches!(
        state.claim_delivery(d, false).await.unwrap(),
        Claim::Interrupted { detail: Some(ref why), .. } if why == "timed out after DATA"
    ));
    // Only a claimed delivery's end is recorded: a late finish does not undo a newer one.
    state
        .finish_delivery(account, Ended::Sent, "ok")
        .await
        .unwrap();
    state
        .finish_delivery(account, Ended::Failed, "late")
        .await
        .unwrap();
    assert!(matches!(
        state.claim_delivery(account, false).await.unwrap(),
        Claim::Sent { .. }
    ));
    // Another account's deliveries are its own.
    assert!(state.unsent_deliveries(2).await.unwrap().is_empty());
}

#[sqlx::test(migrations = false)]
async fn deliveries_are_claimed_once_on_postgres(pool: PgPool) {
    let url = mttx_fixtures::testing::database_url(&pool).await.unwrap();
    let state = State::open(&url.parse::<Location>().unwrap())
        .await
        .unwrap();
    the_claims_hold(&state).await;
}

#[tokio::test]
async fn deliveries_are_claimed_once_on_sqlite() {
    let dir = mttx_fixtures::testing::scratch("state-deliveries").unwrap();
    let state = State::open(&Location::Sqlite(dir.join("state.sqlite")))
        .await
        .unwrap();
    the_claims_hold(&state).await;
    let _ = std::fs::remove_dir_all(&dir);
}
