# CloudWatch alarms: AWS/Lambda's own metrics of the functions and the Kafka mapping, and the
# functions' Embedded Metric Format metrics (namespace var.metrics_namespace, dimension
# `function` = the function name, plus each metric's labels as further dimensions: one dimension
# set per document, so a metric is found only with all of its dimensions).
# The Prometheus rules in prometheus/alerts.yml are their twins for `healthlake exporter` and
# `healthlake local`; docs/runbook.md has a section per alarm (named in each description).
#
# Missing data, alarm by alarm: the functions emit nothing when they are not invoked, and the
# EMF counters may be left out of a document when they did not move. So "no data" is "nothing
# happened" (notBreaching) except where the absence itself is the fault: finalize that stops
# reporting its lag is behind (breaching), and ingest that is never invoked on a topic that is
# never quiet (the optional idle alarm, breaching).

locals {
  alarm_actions = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
  ingest_name   = local.function_names["ingest"]
  finalize_name = local.function_names["finalize"]
  maintain_name = local.function_names["maintain"]

  # FinalizeBehind thresholds: the kind's allowed lateness (the functions' setting, hours) plus
  # slack for the schedule (by default two runs of it).
  finalize_lag_thresholds = {
    daily   = tonumber(local.environment["DAILY_WINDOW_ALLOWED_LATENESS"]) * 3600 + var.alarm_settings.finalize_slack_seconds.daily
    weekly  = tonumber(local.environment["WEEKLY_WINDOW_ALLOWED_LATENESS"]) * 3600 + var.alarm_settings.finalize_slack_seconds.weekly
    monthly = tonumber(local.environment["MONTHLY_WINDOW_ALLOWED_LATENESS"]) * 3600 + var.alarm_settings.finalize_slack_seconds.monthly
  }

  # iceberg_commit_failures series that exist: ingest commits raw and errors, finalize the three
  # aggregate tables, each with error_type retryable or permanent. 10 metrics: the most one
  # metric-math alarm may reference (a further committing function needs a second alarm).
  # maintain's commits are not among them: a maintenance commit that loses is re-planned by the
  # next run, and a run that fails is <name>-maintain-Errors.
  commit_failure_series = flatten([
    for key, tables in { ingest = ["raw", "errors"], finalize = ["daily_agg", "weekly_agg", "monthly_agg"] } : [
      for table in tables : [
        for error_type in ["retryable", "permanent"] : {
          id         = "${key}_${table}_${error_type}"
          function   = local.function_names[key]
          table_name = local.table_names[table]
          error_type = error_type
        }
      ]
    ]
  ])
}

# --- AWS/Lambda ------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "ingest_errors" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name        = "${var.name}-ingest-Errors"
  alarm_description = "Ingest invocations fail (the mapping retries the batch) in two 5-minute periods in a row. Runbook: docs/runbook.md#ingestfunctionerrors"
  namespace         = "AWS/Lambda"
  metric_name       = "Errors"
  dimensions        = { FunctionName = local.ingest_name }
  statistic         = "Sum"
  period            = 300

  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_settings.ingest_errors
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  # No invocations, no errors: the stall and idle alarms watch for a mapping that stopped.
  treat_missing_data = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

resource "aws_cloudwatch_metric_alarm" "ingest_throttles" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name        = "${var.name}-ingest-Throttles"
  alarm_description = "Ingest invocations are throttled for 15 minutes (reserved or account concurrency exhausted). Runbook: docs/runbook.md#ingest-throttles-and-duration"
  namespace         = "AWS/Lambda"
  metric_name       = "Throttles"
  dimensions        = { FunctionName = local.ingest_name }
  statistic         = "Sum"
  period            = 300

  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching" # no throttle reported, none happened

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

resource "aws_cloudwatch_metric_alarm" "ingest_duration" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name        = "${var.name}-ingest-Duration"
  alarm_description = "The slowest ingest invocation ran above 80 % of the function's timeout in two 5-minute periods in a row: batches are about to time out. Runbook: docs/runbook.md#ingest-throttles-and-duration"
  namespace         = "AWS/Lambda"
  metric_name       = "Duration"
  dimensions        = { FunctionName = local.ingest_name }
  statistic         = "Maximum"
  period            = 300

  comparison_operator = "GreaterThanThreshold"
  threshold           = local.function_config["ingest"].timeout * 1000 * 0.8
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching" # no invocation, nothing slow

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

resource "aws_cloudwatch_metric_alarm" "finalize_errors" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name        = "${var.name}-finalize-Errors"
  alarm_description = "A finalize run failed (retried once by Lambda, then sent to the dead-letter queue; the next scheduled run repeats the work). Runbook: docs/runbook.md#finalize-errors"
  namespace         = "AWS/Lambda"
  metric_name       = "Errors"
  dimensions        = { FunctionName = local.finalize_name }
  statistic         = "Sum"
  period            = 900

  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  # Between runs there are no data points; FinalizeBehind catches finalize that stopped running.
  treat_missing_data = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

resource "aws_cloudwatch_metric_alarm" "maintain_errors" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name        = "${var.name}-maintain-Errors"
  alarm_description = "A maintain run failed (retried once by Lambda, then sent to the dead-letter queue; the next scheduled run of the table resumes the work). The failed event names the table; the function's log says which operation failed. See infra/modules/healthlake/README.md#maintenance"
  namespace         = "AWS/Lambda"
  metric_name       = "Errors"
  dimensions        = { FunctionName = local.maintain_name }
  statistic         = "Sum"
  period            = 900

  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  # Between runs there are no data points. A run that ran out of time is no error: it answers
  # "complete": false and the next run resumes.
  treat_missing_data = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

# OffsetLag: records between the topic's end and what ingest processed, at topic level, in
# AWS/Lambda with the FunctionName dimension (the module's one mapping feeds ingest).
resource "aws_cloudwatch_metric_alarm" "offset_lag" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name        = "${var.name}-OffsetLag"
  alarm_description = "More than ${var.alarm_settings.offset_lag} records wait in the topic for 10 minutes. Runbook: docs/runbook.md#highkafkalag"
  namespace         = "AWS/Lambda"
  metric_name       = "OffsetLag"
  dimensions        = { FunctionName = local.ingest_name }
  statistic         = "Maximum"
  period            = 300

  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_settings.offset_lag
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  # Lambda reports no lag while the mapping is disabled or cannot reach the brokers: no
  # evidence of a backlog. A mapping that cannot poll is the idle alarm's (and the mapping's
  # LastProcessingResult).
  treat_missing_data = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

# Optional: no ingest invocation at all for ingest_idle_minutes, for topics that are never quiet.
resource "aws_cloudwatch_metric_alarm" "ingest_idle" {
  count = var.alarms_enabled && var.alarm_settings.ingest_idle_minutes != null ? 1 : 0

  alarm_name        = "${var.name}-ingest-Idle"
  alarm_description = "No ingest invocation for ${coalesce(var.alarm_settings.ingest_idle_minutes, 0)} minutes: the mapping is disabled or cannot poll. Runbook: docs/runbook.md#ingest-idle"
  namespace         = "AWS/Lambda"
  metric_name       = "Invocations"
  dimensions        = { FunctionName = local.ingest_name }
  statistic         = "Sum"
  period            = 300

  comparison_operator = "LessThanThreshold"
  threshold           = 1
  evaluation_periods  = floor(coalesce(var.alarm_settings.ingest_idle_minutes, 5) / 5)
  datapoints_to_alarm = floor(coalesce(var.alarm_settings.ingest_idle_minutes, 5) / 5)
  # Lambda reports no Invocations data point in a period without invocations: absence is the
  # very thing this alarm watches for.
  treat_missing_data = "breaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

# --- healthlake's own metrics (EMF) ----------------------------------------------------------

# Nothing reached the tables (no raw or error rows written) for stalled_minutes while the topic
# kept a backlog the whole time (OffsetLag's minimum above 0 in every period).
resource "aws_cloudwatch_metric_alarm" "ingest_stalled" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name          = "${var.name}-IngestStalled"
  alarm_description   = "No rows written by ingest for ${var.alarm_settings.stalled_minutes} minutes while records wait in the topic. Runbook: docs/runbook.md#ingeststalled"
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = var.alarm_settings.stalled_minutes / 5
  datapoints_to_alarm = var.alarm_settings.stalled_minutes / 5
  # The expression has a value wherever OffsetLag has one (rows are filled with 0): no lag data,
  # no evidence of waiting records. A mapping that cannot poll is the idle alarm's.
  treat_missing_data = "notBreaching"

  metric_query {
    id          = "stalled"
    label       = "1 = no rows written while the topic lags"
    expression  = "IF((FILL(raw, 0) + FILL(err, 0)) == 0 AND lag > 0, 1, 0)"
    return_data = true
  }

  metric_query {
    id = "raw"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "ingest_raw_rows"
      dimensions  = { function = local.ingest_name }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "err"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "ingest_error_rows"
      dimensions  = { function = local.ingest_name }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "lag"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "OffsetLag"
      dimensions  = { FunctionName = local.ingest_name }
      stat        = "Minimum"
      period      = 300
    }
  }

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

# Share of the rows ingest wrote that went to health_data_errors, once at least
# error_rate_min_rows rows were written in the period (a handful of rows is no rate).
resource "aws_cloudwatch_metric_alarm" "high_error_rate" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name          = "${var.name}-HighErrorRate"
  alarm_description   = "More than ${var.alarm_settings.error_rate * 100} % of the rows ingest wrote were errors in two 5-minute periods in a row. Runbook: docs/runbook.md#higherrorrate"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_settings.error_rate
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching" # no rows written, no error rate

  metric_query {
    id          = "rate"
    label       = "error rows / all rows written"
    expression  = "IF(FILL(raw, 0) + FILL(err, 0) >= ${var.alarm_settings.error_rate_min_rows}, FILL(err, 0) / (FILL(raw, 0) + FILL(err, 0)), 0)"
    return_data = true
  }

  metric_query {
    id = "raw"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "ingest_raw_rows"
      dimensions  = { function = local.ingest_name }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "err"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "ingest_error_rows"
      dimensions  = { function = local.ingest_name }
      stat        = "Sum"
      period      = 300
    }
  }

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

# finalize_lag_seconds (now - the kind's watermark) as finalize reports it on each run.
resource "aws_cloudwatch_metric_alarm" "finalize_behind" {
  for_each = var.alarms_enabled ? local.finalize_kinds : {}

  alarm_name        = "${var.name}-FinalizeBehind-${each.key}"
  alarm_description = "${each.key} windows close more than allowed lateness + slack (${local.finalize_lag_thresholds[each.key]} s) late, or finalize stopped reporting for 2 hours. Runbook: docs/runbook.md#finalizebehind"
  namespace         = var.metrics_namespace
  metric_name       = "finalize_lag_seconds"
  dimensions        = { function = local.finalize_name, window_type = each.key }
  statistic         = "Maximum"
  # Each kind runs at least hourly by default (finalize_schedules); a slower custom schedule
  # needs a longer period here.
  period = 3600

  comparison_operator = "GreaterThanThreshold"
  threshold           = local.finalize_lag_thresholds[each.key]
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  # finalize reports on every run: two silent hours mean it does not run (or dies before it
  # flushes its metrics), which leaves windows open just the same.
  treat_missing_data = "breaching"
  # Schedules switched off on purpose (schedules_enabled = false, e.g. while backfilling): the
  # alarm still changes state, but notifies no one.
  actions_enabled = var.schedules_enabled

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}

# iceberg_commit_failures summed over every (function, table, error type) series that exists.
resource "aws_cloudwatch_metric_alarm" "commit_failures" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name          = "${var.name}-CommitFailures"
  alarm_description   = "Iceberg commits of ingest or finalize failed after their retries (more than ${var.alarm_settings.commit_failures} in 10 minutes). Runbook: docs/runbook.md#commitfailures"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_settings.commit_failures
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching" # no failure reported, none happened

  metric_query {
    id          = "failures"
    label       = "commit failures, all tables"
    expression  = "SUM(METRICS())"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.commit_failure_series
    content {
      id = metric_query.value.id
      metric {
        namespace   = var.metrics_namespace
        metric_name = "iceberg_commit_failures"
        dimensions = {
          function   = metric_query.value.function
          table_name = metric_query.value.table_name
          error_type = metric_query.value.error_type
        }
        stat   = "Sum"
        period = 600
      }
    }
  }

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
  tags          = local.tags
}
