output "function_names" {
  description = "Function names by key (ingest, finalize, backfill, maintain)."
  value       = { for key, f in aws_lambda_function.function : key => f.function_name }
}

output "function_arns" {
  description = "Function ARNs by key."
  value       = { for key, f in aws_lambda_function.function : key => f.arn }
}

output "role_arns" {
  description = "Execution role ARN of each function, by key."
  value       = { for key, r in aws_iam_role.function : key => r.arn }
}

output "scheduler_role_arn" {
  description = "Role EventBridge Scheduler invokes finalize and maintain with."
  value       = aws_iam_role.scheduler.arn
}

output "log_group_names" {
  description = "CloudWatch log group of each function, by key."
  value       = { for key, g in aws_cloudwatch_log_group.function : key => g.name }
}

output "database_name" {
  description = "Glue database of the Iceberg tables (ICEBERG_DATABASE)."
  value       = aws_glue_catalog_database.lake.name
}

output "table_names" {
  description = "The five Iceberg tables (raw, errors, daily_agg, weekly_agg, monthly_agg), created by healthlake on first use."
  value       = local.table_names
}

output "bucket_name" {
  description = "Warehouse bucket (tables and failed Kafka batches)."
  value       = local.bucket_name
}

output "warehouse_uri" {
  description = "ICEBERG_WAREHOUSE: s3://<bucket>/<warehouse_prefix>."
  value       = local.warehouse_uri
}

output "on_failure_uri" {
  description = "Where Lambda stores the Kafka batches that exhausted their retries (for healthlake replay)."
  value       = "s3://${local.bucket_name}/${var.on_failure_prefix}"
}

output "state_table_name" {
  description = "DynamoDB state table (HEALTHLAKE_DYNAMODB_TABLE)."
  value       = aws_dynamodb_table.state.name
}

output "state_table_arn" {
  description = "ARN of the DynamoDB state table."
  value       = aws_dynamodb_table.state.arn
}

output "event_source_mapping_uuid" {
  description = "UUID of the Kafka event source mapping feeding ingest."
  value       = aws_lambda_event_source_mapping.kafka.uuid
}

output "dead_letter_queue_url" {
  description = "SQS queue receiving finalize and maintain invocations that failed (undeliverable schedules and failed asynchronous runs)."
  value       = aws_sqs_queue.dead_letter.id
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dead_letter.arn
}

output "environment" {
  description = "The environment every function starts with (no secret in it), e.g. to run the healthlake CLI against the same tables."
  value       = local.environment
}

output "first_athena_query" {
  description = "A first query to run in Athena (engine v3) once ingest has committed a batch."
  value       = "SELECT data_type, count(*) FROM \"${aws_glue_catalog_database.lake.name}\".\"${local.table_names.raw}\" GROUP BY 1"
}

output "alarm_arns" {
  description = "ARNs of the CloudWatch alarms by name (empty with alarms_enabled = false); docs/runbook.md has a section per alarm."
  value = {
    for a in concat(
      aws_cloudwatch_metric_alarm.ingest_stalled, aws_cloudwatch_metric_alarm.offset_lag,
      aws_cloudwatch_metric_alarm.high_error_rate, aws_cloudwatch_metric_alarm.commit_failures,
      aws_cloudwatch_metric_alarm.ingest_errors, aws_cloudwatch_metric_alarm.ingest_throttles,
      aws_cloudwatch_metric_alarm.ingest_duration, aws_cloudwatch_metric_alarm.finalize_errors,
      aws_cloudwatch_metric_alarm.maintain_errors,
      aws_cloudwatch_metric_alarm.ingest_idle, values(aws_cloudwatch_metric_alarm.finalize_behind),
    ) : a.alarm_name => a.arn
  }
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard (null with dashboard_enabled = false)."
  value       = one(aws_cloudwatch_dashboard.pipeline[*].dashboard_name)
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the functions' own metrics (HEALTHLAKE_METRICS_NAMESPACE)."
  value       = var.metrics_namespace
}
