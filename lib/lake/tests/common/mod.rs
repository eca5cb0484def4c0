//! Catalog settings the integration tests share.

use healthlake_lake::{CatalogBackend, CatalogSettings, S3Settings, TableNames};
use healthlake_testkit::AwsEmulator;

/// The embedded catalog in `dir`.
pub(crate) fn sql_settings(dir: &std::path::Path) -> CatalogSettings {
    CatalogSettings {
        catalog_name: "health_catalog".into(),
        backend: CatalogBackend::Sql { uri: format!("sqlite://{}/catalog.db", dir.display()) },
        warehouse: format!("file://{}/warehouse", dir.display()),
        database: "health_db".into(),
        tables: TableNames::default(),
        s3: S3Settings::default(),
    }
}

/// Glue + S3 on a fresh emulator, with the bucket and database created as the deployment does.
pub(crate) fn glue_settings(emulator: &AwsEmulator) -> CatalogSettings {
    let warehouse = "s3://healthlake-lake/warehouse";
    emulator.create_resources(&[("ICEBERG_WAREHOUSE", warehouse), ("ICEBERG_DATABASE", "health_db")]);
    CatalogSettings {
        catalog_name: "health_catalog".into(),
        backend: CatalogBackend::Glue { endpoint: Some(emulator.url.clone()), catalog_id: None },
        warehouse: warehouse.into(),
        database: "health_db".into(),
        tables: TableNames::default(),
        s3: S3Settings {
            endpoint: Some(emulator.url.clone()),
            credentials: Some(("testing".into(), "testing".into())),
            path_style_access: true,
            region: "us-east-1".into(),
        },
    }
}
