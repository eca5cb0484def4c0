//! Opening the catalog and creating the tables on first use.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::io::LocalFsStorageFactory;
use iceberg::spec::FormatVersion;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_BIND_STYLE, SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlCatalogBuilder,
};
use tokio::sync::Mutex;

use crate::LakeError;
use crate::tables::{TableKind, TableNames, definition};

/// Where the tables live. The embedded default is an SQL catalog on a sqlite file with a
/// filesystem warehouse, the same layout pyiceberg's `SqlCatalog` opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSettings {
    /// `ICEBERG_CATALOG_NAME`: the `catalog_name` column of the SQL catalog tables.
    pub catalog_name: String,
    /// `ICEBERG_CATALOG_URI`, e.g. `sqlite:///abs/path/catalog.db`.
    pub catalog_uri: String,
    /// `ICEBERG_WAREHOUSE`, e.g. `file:///abs/path/warehouse`.
    pub warehouse: String,
    /// `ICEBERG_DATABASE`: the namespace.
    pub database: String,
    pub tables: TableNames,
}

/// The tables of one namespace, created on first use.
pub struct Lakehouse {
    catalog: Arc<dyn Catalog>,
    namespace: NamespaceIdent,
    names: TableNames,
    ensured: Mutex<HashMap<TableKind, bool>>,
}

impl std::fmt::Debug for Lakehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lakehouse").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl Lakehouse {
    /// Opens the SQL catalog (creating the sqlite file and the warehouse folder when missing).
    pub async fn open_sql(settings: &CatalogSettings) -> Result<Self, LakeError> {
        let uri = &settings.catalog_uri;
        let path = uri
            .strip_prefix("sqlite://")
            .ok_or_else(|| LakeError::Config(format!("ICEBERG_CATALOG_URI {uri:?} is not a sqlite:// URI")))?;
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| LakeError::Config(format!("cannot create {}: {e}", parent.display())))?;
        }
        if let Some(dir) = settings.warehouse.strip_prefix("file://") {
            std::fs::create_dir_all(dir)
                .map_err(|e| LakeError::Config(format!("cannot create warehouse {dir}: {e}")))?;
        }
        let connect_uri = if uri.contains('?') { uri.clone() } else { format!("{uri}?mode=rwc") };
        let catalog = SqlCatalogBuilder::default()
            .with_storage_factory(Arc::new(LocalFsStorageFactory))
            .load(
                settings.catalog_name.clone(),
                HashMap::from([
                    (SQL_CATALOG_PROP_URI.to_string(), connect_uri),
                    (SQL_CATALOG_PROP_WAREHOUSE.to_string(), settings.warehouse.clone()),
                    (SQL_CATALOG_PROP_BIND_STYLE.to_string(), "QMark".to_string()),
                ]),
            )
            .await?;
        Ok(Self::new(Arc::new(catalog), &settings.database, settings.tables.clone()))
    }

    pub fn new(catalog: Arc<dyn Catalog>, database: &str, names: TableNames) -> Self {
        Self {
            catalog,
            namespace: NamespaceIdent::new(database.to_string()),
            names,
            ensured: Mutex::new(HashMap::new()),
        }
    }

    pub fn catalog(&self) -> &dyn Catalog {
        self.catalog.as_ref()
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
