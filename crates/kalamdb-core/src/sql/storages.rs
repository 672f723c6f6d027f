//! `CREATE STORAGE`, `ALTER STORAGE`, `DROP STORAGE` and `SHOW STORAGES` (admins only).

use serde_json::Value;

use super::ddl::row;
use crate::catalog::{LocationChange, NewLocation};
use crate::{Engine, QueryResult, Result};

impl Engine {
    pub(crate) async fn create_storage(
        &self,
        location: &NewLocation,
        if_not_exists: bool,
    ) -> Result<QueryResult> {
        let _ddl = self.ddl_guard().await;
        let name = &location.name;
        Ok(
            if self.catalog().create_location(location, if_not_exists)? {
                QueryResult::done(1, format!("storage {name} created"))
            } else {
                QueryResult::done(0, format!("storage {name} already exists"))
            },
        )
    }

    pub(crate) async fn alter_storage(
        &self,
        name: &str,
        change: LocationChange,
    ) -> Result<QueryResult> {
        let _ddl = self.ddl_guard().await;
        self.catalog().alter_location(name, change)?;
        Ok(QueryResult::done(1, format!("storage {name} altered")))
    }

    pub(crate) async fn drop_storage(&self, name: &str, if_exists: bool) -> Result<QueryResult> {
        let _ddl = self.ddl_guard().await;
        Ok(if self.catalog().drop_location(name, if_exists)? {
            QueryResult::done(1, format!("storage {name} dropped"))
        } else {
            QueryResult::done(0, format!("storage {name} does not exist"))
        })
    }

    /// Every location with the tables that use it. `credentials` is the name of a profile
    /// in the configuration, never a secret (secrets are never in the catalog).
    pub(crate) fn show_storages(&self) -> Result<QueryResult> {
        let rows = self
            .catalog()
            .locations_with_tables()?
            .into_iter()
            .map(|(l, tables)| {
                row(vec![
                    ("name", l.location_name.into()),
                    ("type", l.location_type.as_str().into()),
                    ("path", l.path.into()),
                    (
                        "credentials",
                        l.credentials_ref.map_or(Value::Null, Value::from),
                    ),
                    ("tables", tables.len().into()),
                    ("created_at", l.created_at.into()),
                ])
            })
            .collect();
        Ok(QueryResult::rows(
            &[
                "name",
                "type",
                "path",
                "credentials",
                "tables",
                "created_at",
            ],
            rows,
        ))
    }
}
