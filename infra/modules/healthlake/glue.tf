# The Glue database is the Iceberg namespace (ICEBERG_DATABASE). The five tables in it
# (health_data_raw, health_data_errors and the daily/weekly/monthly aggregates) are not declared
# here: healthlake creates each one with its Iceberg schema, partition spec and properties on
# first use (lib/lake/src/catalog.rs), and moves their metadata pointers on every commit, which
# Terraform would otherwise see as drift.

resource "aws_glue_catalog_database" "lake" {
  name        = var.database_name
  description = "healthlake Iceberg tables (raw samples, errors, daily/weekly/monthly aggregates), created by healthlake on first use"
  catalog_id  = local.account_id
  tags        = local.tags
}
