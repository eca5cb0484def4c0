# The Kafka event source mapping: Lambda's pollers read var.kafka.topic as consumer group
# var.kafka.consumer_group_id and invoke ingest with batches (records of several partitions, each
# in offset order), committing offsets only after ingest succeeded. Ingest fences by offset
# (snapshot summaries and accumulator fences), so redelivered or regrouped batches are harmless.
#
# On-failure destination and retries (Lambda developer guide, "Capturing discarded batches for
# Amazon MSK and self-managed Apache Kafka event sources" and "Configuring error handling
# controls for Kafka event sources"):
# - An S3 bucket is a valid on-failure destination of a Kafka mapping; Lambda writes the whole
#   invocation record (metadata + the batch) as one object under keys it chooses in that bucket.
#   The function's execution role needs s3:PutObject and s3:ListBucket on it (and
#   kms:GenerateDataKey when the bucket uses a customer key).
# - The pollers run in the cluster's VPC (MSK, or self-managed with VPC_SUBNET entries): that VPC
#   needs an S3 VPC endpoint (gateway endpoint) for the destination to be reachable.
# - MaximumRetryAttempts, MaximumRecordAgeInSeconds, BisectBatchOnFunctionError (and partial batch
#   responses) are accepted on Kafka mappings in provisioned mode only (provisioned_poller_config).
#   Without them (on-demand mode) Lambda retries a failing batch until it succeeds or its records
#   leave the topic's retention, holding that partition back; the destination then receives
#   batches that expired or could not be sent (e.g. over the 6 MB payload limit).
#   So: set kafka.provisioned_pollers and kafka.maximum_retry_attempts for a bounded number of
#   retries before a batch goes to S3 (strict-mode rejects, which never succeed, then stop
#   blocking the partition).
# - Lambda caps a function behind a Kafka mapping at 14 minutes (ingest's timeout is validated).

locals {
  kafka_is_msk = var.kafka.kind == "msk"

  # MSK resource ARNs for the kafka-cluster:* (IAM access control) actions:
  # cluster/<name>/<uuid> -> topic/<name>/<uuid>/<topic>, group/<name>/<uuid>/<group>.
  msk_cluster_arn = local.kafka_is_msk ? var.kafka.cluster_arn : null
  msk_topic_arn   = local.kafka_is_msk ? "${replace(coalesce(var.kafka.cluster_arn, "-"), ":cluster/", ":topic/")}/${var.kafka.topic}" : null
  msk_group_arn   = local.kafka_is_msk ? "${replace(coalesce(var.kafka.cluster_arn, "-"), ":cluster/", ":group/")}/${var.kafka.consumer_group_id}" : null

  # The pollers create network interfaces in a VPC: always for MSK, for self-managed Kafka when
  # subnets are given.
  kafka_in_vpc = local.kafka_is_msk || var.kafka.vpc != null

  kafka_secret_arns = compact([var.kafka.auth_secret_arn, var.kafka.server_root_ca_secret_arn])

  kafka_source_access = concat(
    contains(["IAM", "NONE"], var.kafka.auth_type) ? [] : [{ type = var.kafka.auth_type, uri = var.kafka.auth_secret_arn }],
    var.kafka.server_root_ca_secret_arn == null ? [] : [{ type = "SERVER_ROOT_CA_CERTIFICATE", uri = var.kafka.server_root_ca_secret_arn }],
    [for id in try(var.kafka.vpc.subnet_ids, []) : { type = "VPC_SUBNET", uri = "subnet:${id}" }],
    [for id in try(var.kafka.vpc.security_group_ids, []) : { type = "VPC_SECURITY_GROUP", uri = "security_group:${id}" }],
  )
}

resource "aws_lambda_event_source_mapping" "kafka" {
  function_name = aws_lambda_function.function["ingest"].arn
  enabled       = var.kafka.enabled

  topics            = [var.kafka.topic]
  starting_position = var.kafka.starting_position

  batch_size                         = var.kafka.batch_size
  maximum_batching_window_in_seconds = var.kafka.maximum_batching_window_in_seconds

  # MSK: the cluster ARN; self-managed: the bootstrap servers.
  event_source_arn = local.kafka_is_msk ? var.kafka.cluster_arn : null

  dynamic "amazon_managed_kafka_event_source_config" {
    for_each = local.kafka_is_msk ? [1] : []
    content {
      consumer_group_id = var.kafka.consumer_group_id
    }
  }

  dynamic "self_managed_event_source" {
    for_each = local.kafka_is_msk ? [] : [1]
    content {
      endpoints = {
        KAFKA_BOOTSTRAP_SERVERS = join(",", var.kafka.bootstrap_servers)
      }
    }
  }

  dynamic "self_managed_kafka_event_source_config" {
    for_each = local.kafka_is_msk ? [] : [1]
    content {
      consumer_group_id = var.kafka.consumer_group_id
    }
  }

  dynamic "source_access_configuration" {
    for_each = local.kafka_source_access
    content {
      type = source_access_configuration.value.type
      uri  = source_access_configuration.value.uri
    }
  }

  dynamic "provisioned_poller_config" {
    for_each = var.kafka.provisioned_pollers == null ? [] : [var.kafka.provisioned_pollers]
    content {
      minimum_pollers = provisioned_poller_config.value.minimum
      maximum_pollers = provisioned_poller_config.value.maximum
    }
  }

  # Provisioned mode only (validated in variables.tf); null leaves Lambda's defaults.
  maximum_retry_attempts         = var.kafka.maximum_retry_attempts
  maximum_record_age_in_seconds  = var.kafka.maximum_record_age_in_seconds
  bisect_batch_on_function_error = var.kafka.bisect_batch_on_function_error

  destination_config {
    on_failure {
      destination_arn = local.bucket_arn
    }
  }

  tags = local.tags

  # Lambda checks the role's Kafka, network and destination permissions when it creates the
  # mapping, and the destination bucket must exist.
  depends_on = [
    aws_iam_role_policy.function,
    aws_s3_bucket_policy.warehouse,
  ]
}
