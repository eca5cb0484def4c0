//! Opening the catalog and creating the tables on first use.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::io::{
    LocalFsStorageFactory, S3_ACCESS_KEY_ID, S3_ENDPOINT, S3_PATH_STYLE_ACCESS, S3_REGION, S3_SECRET_ACCESS_KEY,
    StorageFactory,
};
use iceberg::spec::FormatVersion;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_glue::{
    AWS_ACCESS_KEY_ID, AWS_REGION_NAME, AWS_SECRET_ACCESS_KEY, GLUE_CATALOG_PROP_CATALOG_ID, GLUE_CATALOG_PROP_URI,
    GLUE_CATALOG_PROP_WAREHOUSE, GlueCatalogBuilder,
};
use iceberg_catalog_rest::{REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalogBuilder};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_BIND_STYLE, SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlCatalog, SqlCatalogBuilder,
};
use iceberg_storage_opendal::OpenDalStorageFactory;
use tokio::sync::Mutex;

use crate::LakeError;
use crate::pointer::{GluePointer, MetadataPointer, SqlPointer};
use crate::storage::CreateOnlyS3StorageFactory;
use crate::tables::{TableKind, TableNames, definition};

/// Which catalog holds the tables' metadata pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogBackend {
    /// The embedded default: an SQL catalog on a sqlite file, the layout pyiceberg's `SqlCatalog`
    /// opens. `uri` is `sqlite:///abs/path/catalog.db`.
    Sql { uri: String },
    /// AWS Glue. `endpoint` overrides the Glue endpoint (an emulator); `catalog_id` is the
    /// account whose catalog is used when it is not the caller's.
    Glue { endpoint: Option<String>, catalog_id: Option<String> },
    /// An Iceberg REST catalog at `uri`.
    Rest { uri: String },
}

/// How data and metadata files reach S3 (ignored for a `file://` warehouse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `S3_ENDPOINT`: an S3-compatible endpoint; AWS's own when `None`.
    pub endpoint: Option<String>,
    /// `S3_ACCESS_KEY` / `S3_SECRET_KEY`; the default AWS credential chain when `None`.
    pub credentials: Option<(String, String)>,
    /// `S3_PATH_STYLE_ACCESS`.
    pub path_style_access: bool,
    /// `S3_REGION`.
    pub region: String,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self { endpoint: None, credentials: None, path_style_access: true, region: "us-east-1".into() }
    }
}

impl S3Settings {
    /// The `s3.*` FileIO properties every catalog passes to the storage layer.
    pub fn file_io_props(&self) -> HashMap<String, String> {
        let mut props = HashMap::from([
            (S3_REGION.to_string(), self.region.clone()),
            (S3_PATH_STYLE_ACCESS.to_string(), self.path_style_access.to_string()),
        ]);
        if let Some(endpoint) = &self.endpoint {
            props.insert(S3_ENDPOINT.to_string(), endpoint.clone());
        }
        if let Some((key, secret)) = &self.credentials {
            props.insert(S3_ACCESS_KEY_ID.to_string(), key.clone());
            props.insert(S3_SECRET_ACCESS_KEY.to_string(), secret.clone());
        }
        props
    }
}

/// Where the tables live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSettings {
    /// `ICEBERG_CATALOG_NAME` (for the SQL catalog: the `catalog_name` column of its tables).
    pub catalog_name: String,
    pub backend: CatalogBackend,
    /// `ICEBERG_WAREHOUSE`: `file:///abs/path` (SQL catalog only) or `s3://bucket/prefix`.
    pub warehouse: String,
    /// `ICEBERG_DATABASE`: the namespace (Glue database).
    pub database: String,
    pub tables: TableNames,
    pub s3: S3Settings,
}

/// The tables of one namespace, created on first use.
pub struct Lakehouse {
    catalog: Arc<dyn Catalog>,
    /// How overwrite commits publish their metadata (None: the catalog has no swap healthlake
    /// can make, so upserts are refused).
    pointer: Option<Arc<dyn MetadataPointer>>,
    namespace: NamespaceIdent,
    names: TableNames,
    ensured: Mutex<HashMap<TableKind, bool>>,
}

impl std::fmt::Debug for Lakehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lakehouse").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

/// Whether a location is on the local filesystem (else S3).
fn is_local(location: &str) -> Result<bool, LakeError> {
    if location.starts_with("file://") {
        Ok(true)
    } else if location.starts_with("s3://") || location.starts_with("s3a://") || location.is_empty() {
        Ok(false)
    } else {
        Err(LakeError::Config(format!("warehouse {location:?} is neither file:// nor s3://")))
    }
}

/// The storage layer of the tables: local files, or S3 creating objects only, so no write can
/// replace a file a snapshot references ([`crate::storage`]).
fn storage_factory(warehouse: &str) -> Result<Arc<dyn StorageFactory>, LakeError> {
    if is_local(warehouse)? { Ok(Arc::new(LocalFsStorageFactory)) } else { Ok(Arc::new(CreateOnlyS3StorageFactory)) }
}

/// A FileIO for a location outside the tables (`file://` or `s3://`), with the same S3 settings
/// the catalogs use; for files healthlake writes beside the lake (failed batches, which a retried
/// send writes again under the same name, so these writes may overwrite).
pub fn file_io_for(location: &str, s3: &S3Settings) -> Result<iceberg::io::FileIO, LakeError> {
    let factory: Arc<dyn StorageFactory> = if is_local(location)? {
        Arc::new(LocalFsStorageFactory)
    } else {
        Arc::new(OpenDalStorageFactory::S3 { customized_credential_load: None })
    };
    Ok(iceberg::io::FileIOBuilder::new(factory).with_props(s3.file_io_props()).build())
}

/// Opens the SQL catalog (creating the sqlite file and the warehouse folder when missing), and
/// a connection of our own to its table for overwrite commits.
async fn open_sql(uri: &str, settings: &CatalogSettings) -> Result<(SqlCatalog, SqlPointer), LakeError> {
    let path = uri
        .strip_prefix("sqlite://")
        .ok_or_else(|| LakeError::Config(format!("ICEBERG_CATALOG_URI {uri:?} is not a sqlite:// URI")))?;
    let path = path.split('?').next().unwrap_or(path);
    if let Some(parent) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| LakeError::Config(format!("cannot create {}: {e}", parent.display())))?;
    }
    if let Some(dir) = settings.warehouse.strip_prefix("file://") {
        std::fs::create_dir_all(dir).map_err(|e| LakeError::Config(format!("cannot create warehouse {dir}: {e}")))?;
    }
    let connect_uri = if uri.contains('?') { uri.to_string() } else { format!("{uri}?mode=rwc") };
    let mut props = settings.s3.file_io_props();
    props.extend([
        (SQL_CATALOG_PROP_URI.to_string(), connect_uri.clone()),
        (SQL_CATALOG_PROP_WAREHOUSE.to_string(), settings.warehouse.clone()),
        (SQL_CATALOG_PROP_BIND_STYLE.to_string(), "QMark".to_string()),
    ]);
    let catalog = SqlCatalogBuilder::default()
        .with_storage_factory(storage_factory(&settings.warehouse)?)
        .load(settings.catalog_name.clone(), props)
        .await?;
    let pool = sqlx::SqlitePool::connect(&connect_uri)
        .await
        .map_err(|e| LakeError::Config(format!("ICEBERG_CATALOG_URI {uri:?}: {e}")))?;
    Ok((catalog, SqlPointer { pool, catalog_name: settings.catalog_name.clone() }))
}

/// A Glue client configured like iceberg-catalog-glue configures its own.
async fn glue_client(endpoint: Option<&String>, settings: &CatalogSettings) -> aws_sdk_glue::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(settings.s3.region.clone()));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some((key, secret)) = &settings.s3.credentials {
        loader = loader.credentials_provider(aws_sdk_glue::config::Credentials::new(
            key,
            secret,
            None,
            None,
            "healthlake-settings",
        ));
    }
    aws_sdk_glue::Client::new(&loader.load().await)
}

impl Lakehouse {
    /// Opens the configured catalog.
    pub async fn open(settings: &CatalogSettings) -> Result<Self, LakeError> {
        let mut pointer: Option<Arc<dyn MetadataPointer>> = None;
        let catalog: Arc<dyn Catalog> = match &settings.backend {
            CatalogBackend::Sql { uri } => {
                let (catalog, sql_pointer) = open_sql(uri, settings).await?;
                pointer = Some(Arc::new(sql_pointer));
                Arc::new(catalog)
            }
            CatalogBackend::Glue { endpoint, catalog_id } => {
                let mut props = settings.s3.file_io_props();
                props.insert(GLUE_CATALOG_PROP_WAREHOUSE.to_string(), settings.warehouse.clone());
                props.insert(AWS_REGION_NAME.to_string(), settings.s3.region.clone());
                // Static keys are for S3-compatible stores and emulators, where Glue takes the
                // same ones; on AWS they stay unset and both use the function's role.
                if let Some((key, secret)) = &settings.s3.credentials {
                    props.insert(AWS_ACCESS_KEY_ID.to_string(), key.clone());
                    props.insert(AWS_SECRET_ACCESS_KEY.to_string(), secret.clone());
                }
                if let Some(endpoint) = endpoint {
                    props.insert(GLUE_CATALOG_PROP_URI.to_string(), endpoint.clone());
                }
                if let Some(id) = catalog_id {
                    props.insert(GLUE_CATALOG_PROP_CATALOG_ID.to_string(), id.clone());
                }
                pointer = Some(Arc::new(GluePointer {
                    client: glue_client(endpoint.as_ref(), settings).await,
                    catalog_id: catalog_id.clone(),
                }));
                Arc::new(
                    GlueCatalogBuilder::default()
                        .with_storage_factory(storage_factory(&settings.warehouse)?)
                        .load(settings.catalog_name.clone(), props)
                        .await?,
                )
            }
            CatalogBackend::Rest { uri } => {
                let mut props = settings.s3.file_io_props();
                props.insert(REST_CATALOG_PROP_URI.to_string(), uri.clone());
                if !settings.warehouse.is_empty() {
                    props.insert(REST_CATALOG_PROP_WAREHOUSE.to_string(), settings.warehouse.clone());
                }
                Arc::new(
                    RestCatalogBuilder::default()
                        .with_storage_factory(storage_factory(&settings.warehouse)?)
                        .load(settings.catalog_name.clone(), props)
                        .await?,
                )
            }
        };
        let mut lake = Self::new(catalog, &settings.database, settings.tables.clone());
        lake.pointer = pointer;
        Ok(lake)
    }

    /// Tables in any catalog; upserts need [`Lakehouse::open`], which knows how to swap the
    /// pointer of the catalogs it opens.
    pub fn new(catalog: Arc<dyn Catalog>, database: &str, names: TableNames) -> Self {
        Self {
            catalog,
            pointer: None,
            namespace: NamespaceIdent::new(database.to_string()),
            names,
            ensured: Mutex::new(HashMap::new()),
        }
    }

    pub fn catalog(&self) -> &dyn Catalog {
        self.catalog.as_ref()
    }

    pub(crate) fn pointer(&self) -> Option<&dyn MetadataPointer> {
        self.pointer.as_deref()
    }

    pub fn ident(&self, kind: TableKind) -> TableIdent {
        TableIdent::new(self.namespace.clone(), self.names.name(kind).to_string())
    }

    pub fn table_name(&self, kind: TableKind) -> &str {
        self.names.name(kind)
    }

    /// Loads a table, creating the namespace and the table with the spec's definition first
    /// when they do not exist yet. Safe when several writers race to create it.
    pub async fn table(&self, kind: TableKind) -> Result<Table, LakeError> {
        let ident = self.ident(kind);
        let mut ensured = self.ensured.lock().await;
        if !ensured.get(&kind).copied().unwrap_or(false) {
            self.create_if_missing(kind, &ident).await?;
            ensured.insert(kind, true);
        }
        drop(ensured);
        Ok(self.catalog.load_table(&ident).await?)
    }

    async fn create_if_missing(&self, kind: TableKind, ident: &TableIdent) -> Result<(), LakeError> {
        if !self.catalog.namespace_exists(&self.namespace).await? {
            match self.catalog.create_namespace(&self.namespace, HashMap::new()).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NamespaceAlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.catalog.table_exists(ident).await? {
            return Ok(());
        }
        let def = definition(kind)?;
        let creation = TableCreation::builder()
            .name(ident.name().to_string())
            .schema(def.schema)
            .partition_spec(def.partition_spec)
            .properties(def.properties)
            .format_version(FormatVersion::V2)
            .build();
        match self.catalog.create_table(&self.namespace, creation).await {
            Ok(_) => {
                tracing::info!(table = %ident, "created table");
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::TableAlreadyExists => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
