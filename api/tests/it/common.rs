//! Helpers shared by the binary's tests.

use std::path::PathBuf;

use sqlx::PgPool;

/// A fresh folder under the system's temp dir.
pub fn scratch(name: &str) -> PathBuf {
    mttx_fixtures::testing::scratch(&format!("cli-{name}")).unwrap()
}

/// The URL of the per-test database behind `pool`.
pub async fn test_url(pool: &PgPool) -> String {
    mttx_fixtures::testing::database_url(pool).await.unwrap()
}
