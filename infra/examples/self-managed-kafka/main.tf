# healthlake fed by a self-managed Kafka cluster (or Confluent, Redpanda, ...) reached over
# SASL/SCRAM-SHA-512 from two private subnets, with provisioned pollers so that a batch that keeps
# failing is retried a bounded number of times and then stored in S3 instead of holding its
# partition back. The subnets need an S3 gateway endpoint for the on-failure destination.

module "healthlake" {
  source = "../../modules/healthlake"

  name                 = var.name
  lambda_artifacts_dir = var.lambda_artifacts_dir
  architecture         = var.architecture

  kafka = {
    kind              = "self_managed"
    bootstrap_servers = var.bootstrap_servers
    auth_type         = "SASL_SCRAM_512_AUTH"
    auth_secret_arn   = var.kafka_secret_arn
    # Brokers with certificates of a private CA: the CA's PEM in a secret.
    server_root_ca_secret_arn = var.kafka_root_ca_secret_arn
    vpc = {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
    topic                              = var.topic
    consumer_group_id                  = "${var.name}-ingest"
    partitions                         = var.topic_partitions
    batch_size                         = 1000
    maximum_batching_window_in_seconds = 5
    starting_position                  = "TRIM_HORIZON"

    provisioned_pollers = {
      minimum = 1
      maximum = 4
    }
    maximum_retry_attempts = 10
  }

  schema_registry = {
    url        = var.schema_registry_url
    secret_arn = var.schema_registry_secret_arn
  }

  # Run the functions in the same subnets: the registry is private too. The subnets then need
  # routes to S3, Glue, DynamoDB, Secrets Manager and CloudWatch Logs (NAT or VPC endpoints).
  function_vpc = var.functions_in_vpc ? {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  } : null

  settings = var.settings

  # CloudWatch alarms notify this SNS topic (null: they only change state); docs/runbook.md.
  alarm_topic_arn = var.alarm_topic_arn

  # Teardown: apply with these two flipped, then destroy (../../README.md).
  state_table_deletion_protection = var.state_table_deletion_protection
  force_destroy                   = var.force_destroy
}
