# One role per function (from local.functions), never shared, each allowed what its code calls
# and nothing more; and the scheduler's role, allowed to invoke finalize and maintain only.
#
# What the code calls, and so what is granted:
# - Glue (iceberg-catalog-glue + lib/lake/src/pointer.rs): GetDatabase (namespace exists),
#   GetTable (table exists, load, the pointer swap's read), UpdateTable (every commit moves the
#   metadata pointer) for every function; CreateDatabase (only if the database went missing) and
#   CreateTable (tables are created on first use) only for the functions that load tables with
#   Lakehouse::table (creates_tables), beside GetTables (iceberg-catalog-glue's list_tables, which
#   no handler calls today; kept where it was granted, never added). maintain loads existing
#   tables only (Lakehouse::existing_table) and skips a missing one. App::open, every function's
#   start, makes no Glue call: the Glue catalog is built without a request.
# - S3 (lib/lake/src/storage.rs): GetObject (reads, HEAD), PutObject (create-only writes, with
#   If-None-Match; multipart parts too), AbortMultipartUpload (a failed multipart write),
#   ListBucket under the warehouse prefix. DeleteObject under the warehouse prefix only for the
#   functions that delete (deletes_objects: maintain): lib/lake deletes in maintenance only, in
#   snapshot expiry (files only expired snapshots read), old metadata files (past the metadata
#   log), orphan removal and compaction (the files it wrote, when its commit lost to another
#   writer).
# - DynamoDB (lib/state/src/dynamodb): per function in local.functions. TransactWriteItems has no
#   action of its own: it is authorised per item, as PutItem and ConditionCheckItem. App::open
#   only builds the client (DynamoDbStore::new makes no request: no DescribeTable), so a function
#   without state-table calls (maintain) gets no DynamoDB statement.
# - Secrets Manager: App::open reads HEALTHLAKE_SCHEMA_REGISTRY_SECRET (GetSecretValue) whenever
#   the environment names one, in every function, maintain included.

locals {
  log_group_arns = { for key, group in aws_cloudwatch_log_group.function : key => group.arn }

  glue_resources = [
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog",
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${aws_glue_catalog_database.lake.name}",
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${aws_glue_catalog_database.lake.name}/*",
  ]

  state_table_resources = [
    aws_dynamodb_table.state.arn,
    "${aws_dynamodb_table.state.arn}/index/by_window",
  ]

  # Network interfaces: Lambda's Kafka pollers need them in the cluster's VPC (ingest only);
  # functions in var.function_vpc need them for themselves (every function).
  needs_network_interfaces = {
    for key, f in local.functions : key => (var.function_vpc != null || (f.reads_kafka && local.kafka_in_vpc))
  }
}

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  description        = "healthlake ${each.key} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
  tags               = local.tags
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${local.log_group_arns[each.key]}:*"]
  }

  statement {
    sid       = "IcebergCatalog"
    actions   = ["glue:GetDatabase", "glue:GetTable", "glue:UpdateTable"]
    resources = local.glue_resources
  }

  # Tables (and the database) are created on first use by the functions that write them.
  dynamic "statement" {
    for_each = each.value.creates_tables ? [1] : []
    content {
      sid       = "IcebergCatalogCreate"
      actions   = ["glue:CreateDatabase", "glue:GetTables", "glue:CreateTable"]
      resources = local.glue_resources
    }
  }

  statement {
    sid       = "WarehouseObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket_arn}/${var.warehouse_prefix}/*"]
  }

  # Maintenance deletes what no retained snapshot or metadata file references any more: the
  # files of expired snapshots, old metadata files, orphans, a lost compaction's own output
  # (lib/lake expire.rs, metadata_files.rs, orphans.rs, compact.rs).
  # A batch delete (DeleteObjects) is authorised per key by this same action. The bucket is
  # versioned: a deleted file stays a noncurrent version for noncurrent_version_expiration_days.
  dynamic "statement" {
    for_each = each.value.deletes_objects ? [1] : []
    content {
      sid       = "WarehouseDeletes"
      actions   = ["s3:DeleteObject"]
      resources = ["${local.bucket_arn}/${var.warehouse_prefix}/*"]
    }
  }

  statement {
    sid       = "ListWarehouse"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.warehouse_prefix, "${var.warehouse_prefix}/*"]
    }
  }

  dynamic "statement" {
    for_each = var.bucket_kms_key_arn == null ? [] : [var.bucket_kms_key_arn]
    content {
      sid       = "WarehouseKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }

  # A statement without actions is invalid: none at all for a function that never calls the
  # state table (maintain).
  dynamic "statement" {
    for_each = length(each.value.dynamodb_actions) > 0 ? [1] : []
    content {
      sid       = "StateTable"
      actions   = each.value.dynamodb_actions
      resources = local.state_table_resources
    }
  }

  dynamic "statement" {
    for_each = var.state_table_kms_key_arn != null && length(each.value.dynamodb_actions) > 0 ? [var.state_table_kms_key_arn] : []
    content {
      sid       = "StateTableKey"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["dynamodb.${local.region}.amazonaws.com"]
      }
    }
  }

  # Read once at start by every function (HEALTHLAKE_SCHEMA_REGISTRY_SECRET): App::open resolves
  # it before anything else, whatever the function does afterwards (maintain too).
  dynamic "statement" {
    for_each = var.schema_registry.secret_arn == null ? [] : [var.schema_registry.secret_arn]
    content {
      sid       = "SchemaRegistrySecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.schema_registry.secret_kms_key_arn == null ? [] : [var.schema_registry.secret_kms_key_arn]
    content {
      sid       = "SchemaRegistrySecretKey"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }

  # Asynchronous invocations that failed after Lambda's retries (dead_letter_config).
  dynamic "statement" {
    for_each = each.value.invoked_async ? [1] : []
    content {
      sid       = "DeadLetterQueue"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.dead_letter.arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.invoked_async && var.queue_kms_key_arn != null ? [var.queue_kms_key_arn] : []
    content {
      sid       = "DeadLetterQueueKey"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]
    }
  }

  # --- The Kafka event source mapping acts with ingest's role ---

  dynamic "statement" {
    for_each = each.value.reads_kafka && local.kafka_is_msk ? [1] : []
    content {
      sid       = "MskCluster"
      actions   = ["kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"]
      resources = [local.msk_cluster_arn]
    }
  }

  # MSK IAM access control: connect, read the topic, and commit the group's offsets.
  dynamic "statement" {
    for_each = each.value.reads_kafka && local.kafka_is_msk && var.kafka.auth_type == "IAM" ? [1] : []
    content {
      sid       = "MskConnect"
      actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeClusterDynamicConfiguration"]
      resources = [local.msk_cluster_arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.reads_kafka && local.kafka_is_msk && var.kafka.auth_type == "IAM" ? [1] : []
    content {
      sid       = "MskReadTopic"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
      resources = [local.msk_topic_arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.reads_kafka && local.kafka_is_msk && var.kafka.auth_type == "IAM" ? [1] : []
    content {
      sid       = "MskConsumerGroup"
      actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
      resources = [local.msk_group_arn]
    }
  }

  # SASL/SCRAM, BASIC (SASL/PLAIN) and client-certificate credentials, and a private root CA.
  dynamic "statement" {
    for_each = each.value.reads_kafka && length(local.kafka_secret_arns) > 0 ? [1] : []
    content {
      sid       = "KafkaAuthSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.kafka_secret_arns
    }
  }

  dynamic "statement" {
    for_each = each.value.reads_kafka && var.kafka.auth_secret_kms_key_arn != null ? [var.kafka.auth_secret_kms_key_arn] : []
    content {
      sid       = "KafkaAuthSecretKey"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }

  # Failed batches written by the mapping to the on-failure destination (the warehouse bucket).
  dynamic "statement" {
    for_each = each.value.reads_kafka ? [1] : []
    content {
      sid       = "OnFailureDestinationObjects"
      actions   = ["s3:PutObject"]
      resources = ["${local.bucket_arn}/${var.on_failure_prefix}*"]
    }
  }

  # Lambda's documented requirement for an S3 destination; it checks the bucket itself (no key
  # prefix in the request), so this one cannot carry an s3:prefix condition. It lists key names
  # only; reading objects stays limited to the warehouse prefix.
  dynamic "statement" {
    for_each = each.value.reads_kafka ? [1] : []
    content {
      sid       = "OnFailureDestinationBucket"
      actions   = ["s3:ListBucket"]
      resources = [local.bucket_arn]
    }
  }

  # ec2:CreateNetworkInterface and the Describe* calls do not support resource-level
  # permissions: Resource "*" is the only form AWS accepts (AWSLambdaVPCAccessExecutionRole and
  # AWSLambdaMSKExecutionRole do the same). Granted only where a VPC is involved.
  dynamic "statement" {
    for_each = local.needs_network_interfaces[each.key] ? [1] : []
    content {
      sid = "NetworkInterfaces"
      actions = [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
      ]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

# --- EventBridge Scheduler ---

data "aws_iam_policy_document" "scheduler_assume_role" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    # Only schedules of this account may use the role.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  description        = "EventBridge Scheduler invoking healthlake finalize and maintain"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume_role.json
  tags               = local.tags
}

data "aws_iam_policy_document" "scheduler" {
  # The two scheduled functions (schedules.tf); never ingest or backfill.
  statement {
    sid       = "InvokeScheduledFunctions"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.function["finalize"].arn, aws_lambda_function.function["maintain"].arn]
  }

  statement {
    sid       = "DeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letter.arn]
  }

  dynamic "statement" {
    for_each = var.queue_kms_key_arn == null ? [] : [var.queue_kms_key_arn]
    content {
      sid       = "QueueAndScheduleKey"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
