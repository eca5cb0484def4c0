# The warehouse bucket: Iceberg data and metadata under var.warehouse_prefix, and the Kafka
# batches the event source mapping gave up on under var.on_failure_prefix. With
# existing_bucket_name set, that bucket is used as it is; its encryption,
# versioning, policies and lifecycle are then its owner's.

resource "aws_s3_bucket" "warehouse" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice per deployment (a second bucket, region and role); the tables can also be rebuilt from Kafka retention with backfill.
  #checkov:skip=CKV2_AWS_62:No consumer of object-created events exists; Iceberg readers find files through the catalog, not through notifications.
  count = local.create_bucket ? 1 : 0

  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_versioning" "warehouse" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.warehouse[0].id

  versioning_configuration {
    # healthlake never overwrites an object (every write is If-None-Match: *), so versions only
    # protect against deletes by hand or by other tools.
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "warehouse" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.warehouse[0].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.bucket_kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.bucket_kms_key_arn
    }
    # An S3 Bucket Key cuts the KMS requests of the many small metadata and manifest files.
    bucket_key_enabled = var.bucket_kms_key_arn != null
  }
}

resource "aws_s3_bucket_public_access_block" "warehouse" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.warehouse[0].id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "warehouse" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.warehouse[0].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_iam_policy_document" "warehouse_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      local.bucket_arn,
      "${local.bucket_arn}/*",
    ]

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

resource "aws_s3_bucket_policy" "warehouse" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.warehouse[0].id
  policy = data.aws_iam_policy_document.warehouse_bucket.json

  # The public access block must exist first, or S3 may judge the policy before it applies.
  depends_on = [aws_s3_bucket_public_access_block.warehouse]
}

resource "aws_s3_bucket_lifecycle_configuration" "warehouse" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.warehouse[0].id

  # Failed Kafka batches are kept for replay (healthlake replay) for a while, then dropped.
  rule {
    id     = "expire-failed-kafka-batches"
    status = "Enabled"

    filter {
      prefix = var.on_failure_prefix
    }

    expiration {
      days = var.on_failure_expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # Table files are removed only by Iceberg maintenance (snapshot expiry, orphan removal); the
  # versions it leaves behind are kept for a while to undo a mistake, then dropped.
  rule {
    id     = "warehouse-noncurrent-versions"
    status = "Enabled"

    filter {
      prefix = "${var.warehouse_prefix}/"
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  # A writer that died mid-upload leaves parts that are billed but never visible.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Lifecycle rules on a versioned bucket need versioning configured first.
  depends_on = [aws_s3_bucket_versioning.warehouse]
}

resource "aws_s3_bucket_logging" "warehouse" {
  count  = local.create_bucket && var.access_log_bucket != null ? 1 : 0
  bucket = aws_s3_bucket.warehouse[0].id

  target_bucket = var.access_log_bucket
  target_prefix = "s3-access/${local.bucket_name}/"
}
