# The functions, one per entry of local.functions (main.tf), each with its own log group and
# role. Code: the bootstrap.zip scripts/package-lambdas.sh builds with cargo-lambda.

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_338:Retention is a cost decision per deployment (log_retention_days, 30 by default); the tables, not the logs, are the record of what was ingested.
  for_each = local.functions

  # The name Lambda writes to by default, created before the function so that Lambda does not
  # create it first without a retention.
  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signed upload step that scripts/package-lambdas.sh does not have; the zips come from a locked cargo build.
  for_each = local.functions

  function_name = local.function_names[each.key]
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn

  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]

  filename         = local.function_config[each.key].zip
  source_code_hash = filebase64sha256(local.function_config[each.key].zip)

  memory_size                    = local.function_config[each.key].memory_size
  timeout                        = local.function_config[each.key].timeout
  reserved_concurrent_executions = local.function_config[each.key].reserved_concurrent_executions
  kms_key_arn                    = var.lambda_kms_key_arn

  environment {
    variables = local.environment
  }

  logging_config {
    # healthlake writes JSON lines itself (LOG_FORMAT); Lambda's own format stays Text so the
    # lines are not wrapped a second time.
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  # Keeps the trace header of callers that sample (no X-Ray segments of its own, and no
  # xray:* permission, which cannot be scoped to a resource).
  tracing_config {
    mode = "PassThrough"
  }

  dynamic "dead_letter_config" {
    for_each = each.value.invoked_async ? [1] : []
    content {
      target_arn = aws_sqs_queue.dead_letter.arn
    }
  }

  dynamic "vpc_config" {
    for_each = var.function_vpc == null ? [] : [var.function_vpc]
    content {
      subnet_ids         = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }

  tags = local.tags

  # The role's policy must be in place before the first invocation (a schedule may fire at once).
  depends_on = [aws_iam_role_policy.function]
}

# Asynchronous invocations (EventBridge Scheduler -> finalize, maintain): Lambda retries a failed
# run twice by default; a later scheduled run does the same work, so fewer retries and a bounded
# age keep runs from piling up. What still fails lands in the dead-letter queue.
resource "aws_lambda_function_event_invoke_config" "async" {
  for_each = { for key, f in local.functions : key => f if f.invoked_async }

  function_name                = aws_lambda_function.function[each.key].function_name
  maximum_retry_attempts       = 1
  maximum_event_age_in_seconds = 3600
}
