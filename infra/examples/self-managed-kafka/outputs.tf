output "function_names" {
  value = module.healthlake.function_names
}

output "function_arns" {
  value = module.healthlake.function_arns
}

output "role_arns" {
  value = module.healthlake.role_arns
}

output "table_names" {
  value = module.healthlake.table_names
}

output "database_name" {
  value = module.healthlake.database_name
}

output "bucket_name" {
  value = module.healthlake.bucket_name
}

output "warehouse_uri" {
  value = module.healthlake.warehouse_uri
}

output "on_failure_uri" {
  value = module.healthlake.on_failure_uri
}

output "state_table_name" {
  value = module.healthlake.state_table_name
}

output "dead_letter_queue_url" {
  value = module.healthlake.dead_letter_queue_url
}

output "first_athena_query" {
  value = module.healthlake.first_athena_query
}

output "environment" {
  description = "The functions' environment (no secret in it), for the healthlake CLI and healthlake exporter."
  value       = module.healthlake.environment
}
