# EventBridge Scheduler invokes finalize once per window kind on its own expression, with the
# input finalize's handler takes: {"kind": "daily" | "weekly" | "monthly"}; and maintain once a
# day per table (all four operations) plus hourly compaction of raw's recent partitions, with the
# input maintain's handler takes (functions/maintain):
#   {"table": "raw" | "errors" | "daily" | "weekly" | "monthly",
#    "operations": [...],  any of compact, rewrite_manifests, expire, orphans, run in that order
#    "recent_days": N,     compact only the day partitions of the last N days (raw, errors)
#    "grace_days": N,      orphans must be older than this (at least 1)
#    "dry_run": bool}
# Scheduler invokes Lambda asynchronously: an invocation it cannot deliver is retried
# (retry_policy) and then sent to the dead-letter queue; a run that fails inside the function is
# retried by Lambda (functions.tf, event invoke config) and then sent to the same queue. Nothing
# is scheduled for backfill: it is invoked by hand (README.md).

locals {
  finalize_kinds = {
    daily   = var.finalize_schedules.daily
    weekly  = var.finalize_schedules.weekly
    monthly = var.finalize_schedules.monthly
  }

  # maintain's operations, in the order it runs them: compaction and manifest rewrite commit new
  # snapshots, expiry then drops the snapshots past the table's retention and their files, and
  # orphan removal comes last.
  maintenance_operations = ["compact", "rewrite_manifests", "expire", "orphans"]

  # One daily run per table, staggered (by default 20 minutes apart, from 03:00 UTC) so that the
  # tables are not rewritten all at once; and hourly compaction of raw's last two days, where
  # each ingest batch adds small files. A run that does not finish answers "complete": false and
  # the next one resumes. Keys are the table names maintain's input takes (raw_recent: the hourly
  # run); the test in tests/infra/test_wiring.py checks every input against them.
  maintenance_runs = {
    raw        = { expression = var.maintenance_schedules.raw, input = { table = "raw", operations = local.maintenance_operations, grace_days = var.orphan_grace_days } }
    errors     = { expression = var.maintenance_schedules.errors, input = { table = "errors", operations = local.maintenance_operations, grace_days = var.orphan_grace_days } }
    daily      = { expression = var.maintenance_schedules.daily, input = { table = "daily", operations = local.maintenance_operations, grace_days = var.orphan_grace_days } }
    weekly     = { expression = var.maintenance_schedules.weekly, input = { table = "weekly", operations = local.maintenance_operations, grace_days = var.orphan_grace_days } }
    monthly    = { expression = var.maintenance_schedules.monthly, input = { table = "monthly", operations = local.maintenance_operations, grace_days = var.orphan_grace_days } }
    raw_recent = { expression = var.maintenance_schedules.raw_recent, input = { table = "raw", operations = ["compact"], recent_days = 2 } }
  }
}

# One queue for both scheduled functions (the payload tells them apart: "kind" is finalize's,
# "table" maintain's). Its name predates maintain and stays: renaming replaces the queue and
# drops what it holds.
resource "aws_sqs_queue" "dead_letter" {
  name = "${var.name}-finalize-dead-letter"
  # Long enough to notice and look at a failure over a holiday.
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.queue_kms_key_arn == null ? true : null
  kms_master_key_id         = var.queue_kms_key_arn
  tags                      = local.tags
}

data "aws_iam_policy_document" "dead_letter_queue" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.dead_letter.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id
  policy    = data.aws_iam_policy_document.dead_letter_queue.json
}

resource "aws_scheduler_schedule" "finalize" {
  for_each = local.finalize_kinds

  name        = "${var.name}-finalize-${each.key}"
  group_name  = "default"
  description = "healthlake: emit and close ${each.key} windows"

  schedule_expression          = each.value
  schedule_expression_timezone = "UTC"
  state                        = var.schedules_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = var.queue_kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.function["finalize"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ kind = each.key })

    retry_policy {
      maximum_event_age_in_seconds = var.schedule_max_event_age_seconds
      maximum_retry_attempts       = var.schedule_retry_attempts
    }

    dead_letter_config {
      arn = aws_sqs_queue.dead_letter.arn
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}

resource "aws_scheduler_schedule" "maintain" {
  for_each = local.maintenance_runs

  name        = "${var.name}-maintain-${replace(each.key, "_", "-")}"
  group_name  = "default"
  description = "healthlake: maintain ${each.value.input.table} (${join(", ", each.value.input.operations)}${try("; day partitions of the last ${each.value.input.recent_days} days", "")})"

  schedule_expression          = each.value.expression
  schedule_expression_timezone = "UTC"
  state                        = var.maintenance_schedules_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = var.queue_kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.function["maintain"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode(each.value.input)

    # As finalize's: a missed run is repeated by the next one (compaction re-plans from the
    # table's current state), so a bounded age and the dead-letter queue for what is left.
    retry_policy {
      maximum_event_age_in_seconds = var.schedule_max_event_age_seconds
      maximum_retry_attempts       = var.schedule_retry_attempts
    }

    dead_letter_config {
      arn = aws_sqs_queue.dead_letter.arn
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}
