# healthlake fed by an Amazon MSK cluster with IAM access control. The mapping's pollers run in
# the cluster's VPC: give that VPC an S3 gateway endpoint so failed batches reach the bucket.

module "healthlake" {
  source = "../../modules/healthlake"

  name                 = var.name
  lambda_artifacts_dir = var.lambda_artifacts_dir
  architecture         = var.architecture

  kafka = {
    kind              = "msk"
    cluster_arn       = var.msk_cluster_arn
    auth_type         = "IAM"
    topic             = var.topic
    consumer_group_id = "${var.name}-ingest"
    partitions        = var.topic_partitions
    batch_size        = 1000
    # Up to 5 s of records per invocation: fewer, larger Iceberg commits.
    maximum_batching_window_in_seconds = 5
  }

  schema_registry = {
    url        = var.schema_registry_url
    secret_arn = var.schema_registry_secret_arn
  }

  settings = var.settings

  # CloudWatch alarms notify this SNS topic (null: they only change state); docs/runbook.md.
  alarm_topic_arn = var.alarm_topic_arn

  # Teardown: apply with these two flipped, then destroy (../../README.md).
  state_table_deletion_protection = var.state_table_deletion_protection
  force_destroy                   = var.force_destroy
}
