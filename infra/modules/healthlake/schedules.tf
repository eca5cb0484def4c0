# EventBridge Scheduler invokes finalize once per window kind on its own expression, with the
# input finalize's handler takes: {"kind": "daily" | "weekly" | "monthly"}. Scheduler invokes
# Lambda asynchronously: an invocation it cannot deliver is retried (retry_policy) and then sent
# to the dead-letter queue; a run that fails inside the function is retried by Lambda
# (functions.tf, event invoke config) and then sent to the same queue. Nothing is scheduled for
# backfill: it is invoked by hand (README.md).

locals {
  finalize_kinds = {
    daily   = var.finalize_schedules.daily
    weekly  = var.finalize_schedules.weekly
    monthly = var.finalize_schedules.monthly
  }
}

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
