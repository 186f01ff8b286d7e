//! Where a facts table lives: a local folder or an object-store URL, as deltalake wants it.

/// Object stores this build may know (besides local paths, which always work), with the
/// cargo feature each needs.
pub const OBJECT_STORES: &[(&str, &str)] = &[
    ("s3", "s3"),
    ("s3a", "s3"),
    ("az", "azure"),
    ("abfs", "azure"),
    ("abfss", "azure"),
    ("azure", "azure"),
    ("gs", "gcs"),
];

/// A facts location that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error(
        "--facts `{location}`: this mttx was built without {scheme}:// support; rebuild with `cargo build --release -p mttx --features {feature}`"
    )]
    StoreNotCompiled {
        location: String,
        scheme: String,
        feature: &'static str,
    },
    #[error(
        "--facts `{location}` is a file: give a folder for the facts table (made if missing) or an object-store URL"
    )]
    NotAFolder { location: String },
    #[error("cannot create the facts folder {location}")]
    CreateFolder {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--facts `{location}` is not a table location")]
    NotATable {
        location: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
}

fn register_object_stores() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(feature = "s3")]
        deltalake::aws::register_handlers(None);
        #[cfg(feature = "azure")]
        deltalake::azure::register_handlers(None);
        #[cfg(feature = "gcs")]
        deltalake::gcp::register_handlers(None);
    });
}

fn store_compiled(feature: &str) -> bool {
    match feature {
        "s3" => cfg!(feature = "s3"),
        "azure" => cfg!(feature = "azure"),
        "gcs" => cfg!(feature = "gcs"),
        _ => false,
    }
}

/// A location as deltalake wants it: a URL; plain paths become file URLs (the folder is
/// created). Object-store URLs work when their store is compiled in (cargo features s3,
/// azure, gcs); credentials come from the usual environment variables of each store.
pub fn table_url(location: &str) -> Result<url::Url, LocationError> {
    register_object_stores();
    if let Some((scheme, _)) = location.split_once("://")
        && let Some((_, feature)) = OBJECT_STORES.iter().find(|(s, _)| *s == scheme)
        && !store_compiled(feature)
    {
        return Err(LocationError::StoreNotCompiled {
            location: location.to_owned(),
            scheme: scheme.to_owned(),
            feature,
        });
    }
    if !location.contains("://") {
        if std::path::Path::new(location).is_file() {
            return Err(LocationError::NotAFolder {
                location: location.to_owned(),
            });
        }
        std::fs::create_dir_all(location).map_err(|source| LocationError::CreateFolder {
            location: location.to_owned(),
            source,
        })?;
    }
    deltalake::ensure_table_uri(location).map_err(|source| LocationError::NotATable {
        location: location.to_owned(),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_not_a_facts_folder() {
        let dir = std::env::temp_dir().join(format!("mttx-facts-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("notes.txt");
        std::fs::write(&file, "not a table").unwrap();
        let err = table_url(file.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("is a file: give a folder"), "{err}");
        // A folder that does not exist yet is made.
        let made = dir.join("facts");
        table_url(made.to_str().unwrap()).unwrap();
        assert!(made.is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
