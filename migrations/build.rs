//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the folders'
//! files at compile time.
fn main() {
    for dir in ["source", "state", "import"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
