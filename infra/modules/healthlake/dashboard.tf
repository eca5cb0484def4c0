# CloudWatch dashboard <name>: the panels of prometheus/grafana-dashboard.json in CloudWatch
# terms. The functions' EMF metrics carry a `function` dimension plus their labels, so labelled
# metrics are graphed with SEARCH over their dimension set (one line per label value) and the
# unlabelled ones (ingest_records, ingest_raw_rows, ingest_error_rows) directly. What only
# `healthlake exporter` knows (lag per partition, snapshot age, open windows, error rows of the
# last hour) is in Prometheus/Grafana, not here.

locals {
  ns = var.metrics_namespace

  # SEARCH('{ns,function,<labels>} MetricName="<m>" function="<fn>"', '<stat>', <period>)
  dashboard_search = {
    for key, q in {
      valid_by_type      = { labels = "data_type", metric = "valid_records", fn = "ingest", stat = "Sum" }
      invalid_by_type    = { labels = "data_type,error_type", metric = "invalid_records", fn = "ingest", stat = "Sum" }
      errors_by_type     = { labels = "error_type", metric = "validation_errors_total", fn = "ingest", stat = "Sum" }
      late_by_kind       = { labels = "window_type", metric = "late_records", fn = "ingest", stat = "Sum" }
      commit_p50         = { labels = "table_name", metric = "iceberg_commit_duration", fn = "", stat = "p50" }
      commit_p99         = { labels = "table_name", metric = "iceberg_commit_duration", fn = "", stat = "p99" }
      conflicts          = { labels = "table_name", metric = "iceberg_commit_conflicts_retried", fn = "", stat = "Sum" }
      failures           = { labels = "table_name,error_type", metric = "iceberg_commit_failures", fn = "", stat = "Sum" }
      files              = { labels = "table_name", metric = "iceberg_files_written", fn = "", stat = "Sum" }
      bytes              = { labels = "table_name", metric = "iceberg_bytes_written", fn = "", stat = "Sum" }
      finalize_lag       = { labels = "window_type", metric = "finalize_lag_seconds", fn = "finalize", stat = "Maximum" }
      windows            = { labels = "window_type", metric = "windows_processed", fn = "finalize", stat = "Sum" }
      steps_p99          = { labels = "operation", metric = "transformation_duration", fn = "ingest", stat = "p99" }
      aggregation_errors = { labels = "window_type,error_type", metric = "aggregation_errors", fn = "", stat = "Sum" }
    } :
    key => "SEARCH('{${local.ns},function,${q.labels}} MetricName=\"${q.metric}\"${q.fn == "" ? "" : " function=\"${local.function_names[q.fn]}\""}', '${q.stat}', 300)"
  }

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title = "Throughput: records in, rows written (per 5 min)", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.ns, "ingest_records", "function", local.ingest_name, { label = "Kafka records" }],
          [local.ns, "ingest_raw_rows", "function", local.ingest_name, { label = "raw rows" }],
          [local.ns, "ingest_error_rows", "function", local.ingest_name, { label = "error rows" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title   = "Valid samples by data type", region = local.region, view = "timeSeries", stacked = true
        metrics = [[{ expression = local.dashboard_search.valid_by_type, id = "valid", label = "" }]]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title = "Kafka lag (OffsetLag, topic level) and ingest concurrency", region = local.region, view = "timeSeries", period = 60
        metrics = [
          ["AWS/Lambda", "OffsetLag", "FunctionName", local.ingest_name, { stat = "Maximum", label = "OffsetLag" }],
          ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", local.ingest_name, { stat = "Maximum", label = "concurrent ingest", yAxis = "right" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title   = "Finalize lag per window kind (now - watermark, s)", region = local.region, view = "timeSeries"
        metrics = [[{ expression = local.dashboard_search.finalize_lag, id = "lag", label = "" }]]
        annotations = {
          horizontal = [for kind, t in local.finalize_lag_thresholds : { label = "FinalizeBehind ${kind}", value = t }]
        }
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 12, height = 6
      properties = {
        title   = "Errors by type (per 5 min)", region = local.region, view = "timeSeries", stacked = true
        metrics = [[{ expression = local.dashboard_search.errors_by_type, id = "errors", label = "" }]]
      }
    },
    {
      type = "metric", x = 12, y = 12, width = 12, height = 6
      properties = {
        title = "Late records by window kind, aggregation errors", region = local.region, view = "timeSeries"
        metrics = [
          [{ expression = local.dashboard_search.late_by_kind, id = "late", label = "" }],
          [{ expression = local.dashboard_search.aggregation_errors, id = "agg", label = "" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 18, width = 12, height = 6
      properties = {
        title = "Iceberg commit duration p50 / p99 (ms)", region = local.region, view = "timeSeries"
        metrics = [
          [{ expression = local.dashboard_search.commit_p50, id = "p50", label = "p50" }],
          [{ expression = local.dashboard_search.commit_p99, id = "p99", label = "p99" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 18, width = 12, height = 6
      properties = {
        title = "Commit conflicts retried and commit failures", region = local.region, view = "timeSeries"
        metrics = [
          [{ expression = local.dashboard_search.conflicts, id = "conflicts", label = "conflicts retried" }],
          [{ expression = local.dashboard_search.failures, id = "failures", label = "failures" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 24, width = 12, height = 6
      properties = {
        title = "Files written and average file size (bytes)", region = local.region, view = "timeSeries"
        metrics = [
          [{ expression = local.dashboard_search.files, id = "files", label = "files" }],
          [{ expression = "SUM(${local.dashboard_search.bytes}) / SUM(${local.dashboard_search.files})", id = "avg", label = "average file size", yAxis = "right" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 24, width = 12, height = 6
      properties = {
        title = "Ingest steps p99 (ms) and windows processed", region = local.region, view = "timeSeries"
        metrics = [
          [{ expression = local.dashboard_search.steps_p99, id = "steps", label = "" }],
          [{ expression = local.dashboard_search.windows, id = "windows", label = "", yAxis = "right" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 30, width = 12, height = 6
      properties = {
        title = "Lambda errors and throttles", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = concat(
          [for key, name in local.function_names : ["AWS/Lambda", "Errors", "FunctionName", name, { label = "${key} errors" }]],
          [["AWS/Lambda", "Throttles", "FunctionName", local.ingest_name, { label = "ingest throttles" }]],
        )
      }
    },
    {
      type = "metric", x = 12, y = 30, width = 12, height = 6
      properties = {
        title   = "Lambda duration p99 (ms)", region = local.region, view = "timeSeries", stat = "p99", period = 300
        metrics = [for key, name in local.function_names : ["AWS/Lambda", "Duration", "FunctionName", name, { label = key }]]
      }
    },
    {
      type = "text", x = 0, y = 36, width = 24, height = 2
      properties = {
        markdown = "Lag per partition, snapshot age, watermarks, open windows, error rows of the last hour and the exporter's sources: `healthlake exporter` in Prometheus/Grafana (prometheus/grafana-dashboard.json). Alarms: docs/runbook.md."
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "pipeline" {
  count = var.dashboard_enabled ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = concat(local.dashboard_widgets, var.alarms_enabled ? [
      {
        type = "alarm", x = 0, y = 38, width = 24, height = 4
        properties = {
          title = "Alarms"
          alarms = concat(
            [for a in concat(
              aws_cloudwatch_metric_alarm.ingest_stalled, aws_cloudwatch_metric_alarm.offset_lag,
              aws_cloudwatch_metric_alarm.high_error_rate, aws_cloudwatch_metric_alarm.commit_failures,
              aws_cloudwatch_metric_alarm.ingest_errors, aws_cloudwatch_metric_alarm.ingest_throttles,
              aws_cloudwatch_metric_alarm.ingest_duration, aws_cloudwatch_metric_alarm.finalize_errors,
              aws_cloudwatch_metric_alarm.maintain_errors,
              aws_cloudwatch_metric_alarm.ingest_idle,
            ) : a.arn],
            [for a in aws_cloudwatch_metric_alarm.finalize_behind : a.arn],
          )
        }
      },
    ] : [])
  })
}
