//! Storage locations: the rows of `system.storage_locations` that `CREATE STORAGE`,
//! `ALTER STORAGE` and `DROP STORAGE` manage, and the rules that keep tables' Parquet files
//! findable (a location's path does not change, and it does not go, while tables use it).

use std::collections::BTreeMap;

use kalamdb_sql::{LocationType, StorageLocationRecord, TableRecord};
use kalamdb_store::now_ms;

use super::{Catalog, DEFAULT_LOCATION, location_of, names};
use crate::cold::paths::is_url;
use crate::{CoreError, Result};

/// What `CREATE STORAGE` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLocation {
    pub name: String,
    pub location_type: LocationType,
    pub path: String,
    pub credentials_ref: Option<String>,
}

/// What `ALTER STORAGE ... SET` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationChange {
    Path(String),
    Credentials(Option<String>),
}

fn check_path(location_type: LocationType, path: &str) -> Result<()> {
    let bad = |why: String| Err(CoreError::InvalidInput(why));
    match location_type {
        LocationType::Filesystem if is_url(path) => bad(format!(
            "PATH '{path}' is a URL; a filesystem storage takes a directory (or use TYPE s3 for s3:// URLs)"
        )),
        LocationType::S3 if !path.starts_with("s3://") || path.len() <= "s3://".len() => bad(
            format!("PATH '{path}' is not an s3:// URL; write it as 's3://bucket/prefix'"),
        ),
        _ if path.trim().is_empty() => bad("PATH must not be empty".into()),
        _ if path.split('/').any(|seg| seg == "..") => {
            bad(format!("PATH '{path}' may not contain '..'"))
        }
        _ => Ok(()),
    }
}

fn missing(name: &str) -> CoreError {
    CoreError::NotFound(format!(
        "storage '{name}' does not exist; see SHOW STORAGES"
    ))
}

impl Catalog {
    pub fn locations(&self) -> Result<Vec<StorageLocationRecord>> {
        let mut all = self.sql().storage_locations().scan()?;
        all.sort_by(|a, b| a.location_name.cmp(&b.location_name));
        Ok(all)
    }

    /// Every location with the tables that use it (`ns.table`), in one scan of the tables.
    pub fn locations_with_tables(&self) -> Result<Vec<(StorageLocationRecord, Vec<String>)>> {
        let mut by_location: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.tables(None)? {
            by_location
                .entry(location_of(&t).to_string())
                .or_default()
                .push(format!("{}.{}", t.namespace, t.table_name));
        }
        Ok(self
            .locations()?
            .into_iter()
            .map(|l| {
                let tables = by_location.remove(&l.location_name).unwrap_or_default();
                (l, tables)
            })
            .collect())
    }

    /// The tables whose storage is the location `name`, as `ns.table`.
    fn tables_on(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .tables(None)?
            .iter()
            .filter(|t: &&TableRecord| location_of(t) == name)
            .map(|t| format!("{}.{}", t.namespace, t.table_name))
            .collect())
    }

    /// Refuses (409) while tables use the location `name`, naming them; `why` says what
    /// they would lose.
    fn refuse_if_used(&self, name: &str, why: &str) -> Result<()> {
        let users = self.tables_on(name)?;
        if users.is_empty() {
            return Ok(());
        }
        Err(CoreError::Conflict(format!(
            "storage '{name}' is used by {} table(s): {}; {why}",
            users.len(),
            users.join(", ")
        )))
    }

    /// Locations on object storage that tables use but whose credentials cannot be resolved,
    /// each with the reason and those tables: what `/ready` and `verify` report.
    pub fn unreachable_locations(
        &self,
    ) -> Result<Vec<(StorageLocationRecord, String, Vec<String>)>> {
        if !self
            .locations()?
            .iter()
            .any(StorageLocationRecord::is_object_store)
        {
            return Ok(Vec::new());
        }
        Ok(self
            .locations_with_tables()?
            .into_iter()
            .filter(|(_, tables)| !tables.is_empty())
            .filter_map(|(l, tables)| {
                let why = self.unresolved_location(&l)?;
                Some((l, why, tables))
            })
            .collect())
    }

    pub fn create_location(&self, l: &NewLocation, if_not_exists: bool) -> Result<bool> {
        names::validate_name("storage", &l.name)?;
        check_path(l.location_type, &l.path)?;
        if self.sql().storage_locations().exists(&l.name)? {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(CoreError::AlreadyExists(format!(
                    "storage '{}' already exists; see SHOW STORAGES",
                    l.name
                )))
            };
        }
        let now = now_ms();
        self.sql()
            .storage_locations()
            .insert(&StorageLocationRecord {
                location_name: l.name.clone(),
                location_type: l.location_type,
                path: l.path.clone(),
                credentials_ref: l.credentials_ref.clone(),
                usage_count: 0,
                created_at: now,
                updated_at: now,
            })?;
        Ok(true)
    }

    fn location(&self, name: &str) -> Result<StorageLocationRecord> {
        self.sql()
            .storage_locations()
            .get(name)?
            .ok_or_else(|| missing(name))
    }

    /// A new path is refused while tables use the location: the cold-tier manifest records
    /// their files relative to the old one.
    pub fn alter_location(&self, name: &str, change: LocationChange) -> Result<()> {
        let mut loc = self.location(name)?;
        match change {
            LocationChange::Path(path) => {
                check_path(loc.location_type, &path)?;
                self.refuse_if_used(
                    name,
                    "their Parquet files are recorded under its path, so it cannot move while they use it",
                )?;
                loc.path = path;
            }
            LocationChange::Credentials(profile) => loc.credentials_ref = profile,
        }
        loc.updated_at = now_ms();
        self.sql().storage_locations().update(&loc)?;
        Ok(())
    }

    /// Refused for `local` and while tables use the location; the refusal names them.
    pub fn drop_location(&self, name: &str, if_exists: bool) -> Result<bool> {
        if name == DEFAULT_LOCATION {
            return Err(CoreError::InvalidInput(format!(
                "storage '{DEFAULT_LOCATION}' is the default every database has; it cannot be dropped"
            )));
        }
        if !self.sql().storage_locations().exists(name)? {
            return if if_exists {
                Ok(false)
            } else {
                Err(missing(name))
            };
        }
        self.refuse_if_used(name, "drop them first")?;
        self.sql().storage_locations().delete(name)?;
        Ok(true)
    }
}
