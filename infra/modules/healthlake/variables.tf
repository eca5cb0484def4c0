# Inputs of the healthlake module. Every variable is listed with its type and default in
# README.md beside this file; keep the two in step.

# --- Naming ----------------------------------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name: functions are <name>-ingest, <name>-finalize, <name>-backfill, <name>-maintain."
  type        = string
  default     = "healthlake"

  validation {
    condition     = can(regex("^[a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 1-20 lower-case letters, digits or hyphens (it prefixes function, role, queue and bucket names)."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

# --- Warehouse bucket ------------------------------------------------------------------------

variable "existing_bucket_name" {
  description = "Use this existing bucket for the warehouse and failed batches instead of creating one; its encryption, versioning, policy and lifecycle are then its owner's (see README.md for what it needs)."
  type        = string
  default     = null
}

variable "bucket_name" {
  description = "Name of the bucket the module creates; null: <name>-warehouse-<account id>-<region>."
  type        = string
  default     = null
}

variable "warehouse_prefix" {
  description = "Key prefix of the Iceberg warehouse inside the bucket (ICEBERG_WAREHOUSE = s3://<bucket>/<prefix>). No leading or trailing slash."
  type        = string
  default     = "warehouse"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]+(/[a-zA-Z0-9_.-]+)*$", var.warehouse_prefix))
    error_message = "warehouse_prefix must be a non-empty key prefix without leading or trailing slash."
  }
}

variable "on_failure_prefix" {
  description = "Key prefix under which Lambda writes the Kafka batches that exhausted their retries (it chooses the keys itself, aws/lambda/<mapping uuid>/...). The functions' S3 permission for the on-failure destination and the expiry rule use it."
  type        = string
  default     = "aws/lambda/"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_./-]+/$", var.on_failure_prefix))
    error_message = "on_failure_prefix must end with a slash."
  }
}

variable "on_failure_expiration_days" {
  description = "Days after which failed batches stored under on_failure_prefix are deleted (applies to a bucket the module creates)."
  type        = number
  default     = 90

  validation {
    condition     = var.on_failure_expiration_days >= 1
    error_message = "on_failure_expiration_days must be at least 1."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced or deleted object version is kept in the versioned bucket (applies to a bucket the module creates)."
  type        = number
  default     = 30
}

variable "bucket_kms_key_arn" {
  description = "KMS key for the bucket's default encryption (SSE-KMS); null: SSE-S3. The roles get kms:Decrypt and kms:GenerateDataKey on it."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let terraform destroy delete a created bucket that still holds objects (every table file and failed batch is lost)."
  type        = bool
  default     = false
}

variable "access_log_bucket" {
  description = "Bucket receiving S3 server access logs of the warehouse bucket; null: no access logging."
  type        = string
  default     = null
}

# --- Iceberg catalog (Glue) ------------------------------------------------------------------

variable "database_name" {
  description = "Glue database holding the tables (ICEBERG_DATABASE)."
  type        = string
  default     = "health_db"

  validation {
    condition     = can(regex("^[a-z0-9_]{1,255}$", var.database_name))
    error_message = "database_name must be lower-case letters, digits and underscores (Glue and Athena names)."
  }
}

variable "catalog_name" {
  description = "Iceberg catalog name (ICEBERG_CATALOG_NAME); readers such as pyiceberg use the same."
  type        = string
  default     = "health_catalog"
}

variable "table_names" {
  description = "Names of the five Iceberg tables (ICEBERG_TABLE_*); healthlake creates them on first use."
  type = object({
    raw         = optional(string, "health_data_raw")
    errors      = optional(string, "health_data_errors")
    daily_agg   = optional(string, "health_data_daily_agg")
    weekly_agg  = optional(string, "health_data_weekly_agg")
    monthly_agg = optional(string, "health_data_monthly_agg")
  })
  default = {}
}

# --- State table (DynamoDB) ------------------------------------------------------------------

variable "state_table_name" {
  description = "DynamoDB table of accumulators, close markers and partition progress (HEALTHLAKE_DYNAMODB_TABLE)."
  type        = string
  default     = "healthlake-state"
}

variable "state_table_kms_key_arn" {
  description = "Customer-managed KMS key of the state table; null: the AWS-managed key aws/dynamodb."
  type        = string
  default     = null
}

variable "state_table_deletion_protection" {
  description = "Refuse to delete the state table (set false before terraform destroy)."
  type        = bool
  default     = true
}

# --- Functions -------------------------------------------------------------------------------

variable "lambda_artifacts_dir" {
  description = "Directory of the zips scripts/package-lambdas.sh builds: <dir>/<arch>/healthlake-<function>/bootstrap.zip (by default ~/.cache/healthlake/lambda)."
  type        = string
}

variable "architecture" {
  description = "Instruction set of the functions: arm64 (Graviton, the cheaper) or x86_64. The zips must be built for it."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "function_settings" {
  description = "Per function (ingest, finalize, backfill, maintain) overrides of memory_size (MB), timeout (s) and reserved_concurrent_executions (-1: unreserved). Defaults: ingest 1024 MB/300 s, finalize 1024 MB/900 s, backfill 2048 MB/900 s, maintain 2048 MB/900 s."
  type = map(object({
    memory_size                    = optional(number)
    timeout                        = optional(number)
    reserved_concurrent_executions = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.function_settings) : contains(["ingest", "finalize", "backfill", "maintain"], k)])
    error_message = "function_settings keys must be among ingest, finalize, backfill, maintain."
  }
  validation {
    # Lambda allows 15 minutes, but a function behind a Kafka event source mapping may run 14.
    condition     = try(var.function_settings["ingest"].timeout, null) == null || try(var.function_settings["ingest"].timeout, 0) <= 840
    error_message = "ingest's timeout must be at most 840 s: Kafka event source mappings support functions of up to 14 minutes."
  }
  validation {
    condition     = alltrue([for s in values(var.function_settings) : s.timeout == null || (coalesce(s.timeout, 1) >= 1 && coalesce(s.timeout, 1) <= 900)])
    error_message = "timeout must be between 1 and 900 seconds."
  }
  validation {
    condition     = alltrue([for s in values(var.function_settings) : s.memory_size == null || (coalesce(s.memory_size, 128) >= 128 && coalesce(s.memory_size, 128) <= 10240)])
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "log_retention_days" {
  description = "Retention of each function's CloudWatch log group, in days."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "KMS key encrypting the functions' log groups; null: CloudWatch's own encryption. The key policy must allow the logs service."
  type        = string
  default     = null
}

variable "lambda_kms_key_arn" {
  description = "KMS key encrypting the functions' environment variables at rest; null: Lambda's AWS-managed key."
  type        = string
  default     = null
}

variable "log_level" {
  description = "LOG_LEVEL of the functions: TRACE, DEBUG, INFO, WARN/WARNING or ERROR."
  type        = string
  default     = "INFO"
}

variable "log_format" {
  description = "LOG_FORMAT of the functions: json (one object per line, for CloudWatch Logs Insights) or text."
  type        = string
  default     = "json"

  validation {
    condition     = contains(["json", "text"], var.log_format)
    error_message = "log_format must be json or text."
  }
}

variable "settings" {
  description = "Pipeline settings passed to every function as environment variables, merged over the module's defaults (the spec's): lateness, watermark, TTL, validation and sanity limits, DynamoDB shards. Only the names listed in README.md are accepted."
  type        = map(string)
  default     = {}

  validation {
    # Lambda reserves these names (setting one fails the deployment or is ignored); AWS_REGION in
    # particular is Lambda's to set, and healthlake reads it as the default S3/Glue region.
    condition = alltrue([for k in keys(var.settings) : !(
      startswith(k, "AWS_") || startswith(k, "_") || startswith(k, "LAMBDA_") ||
      contains(["TZ", "LANG", "PATH", "LD_LIBRARY_PATH"], k)
    )])
    error_message = "settings may not set names Lambda reserves (AWS_*, LAMBDA_*, _HANDLER, _X_AMZN_TRACE_ID, TZ, LANG, PATH, LD_LIBRARY_PATH); AWS_REGION is set by Lambda."
  }
  validation {
    condition = alltrue([for k in keys(var.settings) : contains([
      "WATERMARK_MAX_OUT_OF_ORDERNESS",
      "DAILY_WINDOW_ALLOWED_LATENESS",
      "WEEKLY_WINDOW_ALLOWED_LATENESS",
      "MONTHLY_WINDOW_ALLOWED_LATENESS",
      "STATE_TTL_DAYS",
      "VALIDATION_ENABLED",
      "VALIDATION_STRICT_MODE",
      "MIN_HEART_RATE",
      "MAX_HEART_RATE",
      "MAX_STEPS_PER_DAY",
      "HEALTHLAKE_DYNAMODB_SHARDS",
      "HEALTHLAKE_PARTITION_IDLE_TIMEOUT_MINUTES",
      "HEALTHLAKE_MAX_FUTURE_SKEW_HOURS",
      "HEALTHLAKE_VALUE_SANITY_LIMITS",
    ], k)])
    error_message = "settings accepts only the pipeline's tunables (see README.md); the module sets catalog, table, state and Kafka names itself, and secrets never go into the environment."
  }
}

# --- Schema registry -------------------------------------------------------------------------

variable "schema_registry" {
  description = "Confluent-compatible schema registry: url (SCHEMA_REGISTRY_URL; null: JSON values only), secret_arn (Secrets Manager secret whose SecretString is {\"username\": ..., \"password\": ...}, passed as HEALTHLAKE_SCHEMA_REGISTRY_SECRET) and secret_kms_key_arn (the secret's customer-managed key, if any)."
  type = object({
    url                = optional(string)
    secret_arn         = optional(string)
    secret_kms_key_arn = optional(string)
  })
  default = {}

  validation {
    condition     = var.schema_registry.url == null || can(regex("^https?://", coalesce(var.schema_registry.url, "-")))
    error_message = "schema_registry.url must start with http:// or https:// (a file:// registry does not exist in Lambda)."
  }
  validation {
    condition     = var.schema_registry.secret_arn == null || var.schema_registry.url != null
    error_message = "schema_registry.secret_arn needs schema_registry.url."
  }
}

# --- Networking of the functions -------------------------------------------------------------

variable "function_vpc" {
  description = "Subnets and security groups to run the functions in (e.g. to reach a private schema registry); null: outside any VPC. The subnets need routes (NAT or VPC endpoints) to S3, Glue, DynamoDB, Secrets Manager and CloudWatch Logs."
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  default = null
}

# --- Kafka -----------------------------------------------------------------------------------

variable "kafka" {
  description = "The Kafka event source feeding ingest. See README.md for every attribute."
  type = object({
    kind              = string # "msk" | "self_managed"
    topic             = optional(string, "health-data-raw")
    consumer_group_id = optional(string, "healthlake-ingest")
    # The topic's partition count (HEALTHLAKE_TOPIC_PARTITIONS): partitions not seen yet hold the
    # watermark back. null: unset.
    partitions                         = optional(number)
    starting_position                  = optional(string, "TRIM_HORIZON")
    batch_size                         = optional(number, 1000)
    maximum_batching_window_in_seconds = optional(number, 5)
    enabled                            = optional(bool, true)

    # msk
    cluster_arn = optional(string)

    # self_managed
    bootstrap_servers = optional(list(string))

    # Authentication: "IAM" (MSK only), "SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH" (self-managed),
    # "BASIC_AUTH" (SASL/PLAIN, self-managed), "CLIENT_CERTIFICATE_TLS_AUTH", or "NONE".
    auth_type               = optional(string, "IAM")
    auth_secret_arn         = optional(string)
    auth_secret_kms_key_arn = optional(string)
    # Self-managed brokers whose TLS certificate chains to a private CA: secret holding the CA.
    server_root_ca_secret_arn = optional(string)

    # Self-managed brokers inside a VPC: where Lambda's pollers connect from.
    vpc = optional(object({
      subnet_ids         = list(string)
      security_group_ids = list(string)
    }))

    # Provisioned mode (dedicated pollers). Required by the retry settings below.
    provisioned_pollers = optional(object({
      minimum = number
      maximum = number
    }))
    maximum_retry_attempts         = optional(number)
    maximum_record_age_in_seconds  = optional(number)
    bisect_batch_on_function_error = optional(bool)
  })

  validation {
    condition     = contains(["msk", "self_managed"], var.kafka.kind)
    error_message = "kafka.kind must be msk or self_managed."
  }
  validation {
    condition     = var.kafka.kind != "msk" || can(regex("^arn:aws[a-z-]*:kafka:[^:]+:[0-9]{12}:cluster/[^/]+/[^/]+$", coalesce(var.kafka.cluster_arn, "-")))
    error_message = "kafka.kind = msk needs kafka.cluster_arn, arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>."
  }
  validation {
    condition     = var.kafka.kind != "self_managed" || length(coalesce(var.kafka.bootstrap_servers, [])) > 0
    error_message = "kafka.kind = self_managed needs kafka.bootstrap_servers (host:port, ...)."
  }
  validation {
    condition     = var.kafka.kind == "msk" ? (var.kafka.bootstrap_servers == null && var.kafka.vpc == null && var.kafka.server_root_ca_secret_arn == null) : var.kafka.cluster_arn == null
    error_message = "msk takes cluster_arn (its VPC and CA are the cluster's); self_managed takes bootstrap_servers, vpc and server_root_ca_secret_arn."
  }
  validation {
    condition = contains(
      var.kafka.kind == "msk"
      ? ["IAM", "SASL_SCRAM_512_AUTH", "CLIENT_CERTIFICATE_TLS_AUTH", "NONE"]
      : ["SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH", "CLIENT_CERTIFICATE_TLS_AUTH", "NONE"],
      var.kafka.auth_type
    )
    error_message = "kafka.auth_type: msk takes IAM, SASL_SCRAM_512_AUTH, CLIENT_CERTIFICATE_TLS_AUTH or NONE; self_managed takes SASL_SCRAM_512_AUTH, SASL_SCRAM_256_AUTH, BASIC_AUTH, CLIENT_CERTIFICATE_TLS_AUTH or NONE."
  }
  validation {
    condition     = contains(["IAM", "NONE"], var.kafka.auth_type) == (var.kafka.auth_secret_arn == null)
    error_message = "kafka.auth_secret_arn is required by the SASL, BASIC and client-certificate auth types, and refused by IAM and NONE."
  }
  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST"], var.kafka.starting_position)
    error_message = "kafka.starting_position must be TRIM_HORIZON or LATEST."
  }
  validation {
    condition     = var.kafka.batch_size >= 1 && var.kafka.batch_size <= 10000
    error_message = "kafka.batch_size must be between 1 and 10000."
  }
  validation {
    condition     = var.kafka.maximum_batching_window_in_seconds >= 0 && var.kafka.maximum_batching_window_in_seconds <= 300
    error_message = "kafka.maximum_batching_window_in_seconds must be between 0 and 300."
  }
  validation {
    condition     = var.kafka.partitions == null || coalesce(var.kafka.partitions, 1) >= 1
    error_message = "kafka.partitions must be at least 1 when set."
  }
  validation {
    # Lambda accepts the error-handling controls on Kafka mappings in provisioned mode only.
    condition = var.kafka.provisioned_pollers != null || (
      var.kafka.maximum_retry_attempts == null &&
      var.kafka.maximum_record_age_in_seconds == null &&
      var.kafka.bisect_batch_on_function_error == null
    )
    error_message = "kafka.maximum_retry_attempts, maximum_record_age_in_seconds and bisect_batch_on_function_error need kafka.provisioned_pollers (Lambda's provisioned mode)."
  }
  validation {
    condition = var.kafka.provisioned_pollers == null || (
      try(var.kafka.provisioned_pollers.minimum, 0) >= 1 &&
      try(var.kafka.provisioned_pollers.minimum, 0) <= 200 &&
      try(var.kafka.provisioned_pollers.maximum, 0) >= try(var.kafka.provisioned_pollers.minimum, 0) &&
      try(var.kafka.provisioned_pollers.maximum, 0) <= 2000
    )
    error_message = "kafka.provisioned_pollers: 1 <= minimum <= 200, minimum <= maximum <= 2000."
  }
  validation {
    condition     = var.kafka.maximum_retry_attempts == null || (coalesce(var.kafka.maximum_retry_attempts, 0) >= -1 && coalesce(var.kafka.maximum_retry_attempts, 0) <= 10000)
    error_message = "kafka.maximum_retry_attempts must be between -1 (until success) and 10000."
  }
}

# --- Schedules of finalize -------------------------------------------------------------------

variable "finalize_schedules" {
  description = "EventBridge Scheduler expressions invoking finalize per window kind (rate(...) or cron(...), UTC). A window is closed at the first run after its end plus allowed lateness."
  type = object({
    daily   = optional(string, "rate(15 minutes)")
    weekly  = optional(string, "rate(1 hour)")
    monthly = optional(string, "rate(1 hour)")
  })
  default = {}

  validation {
    condition     = alltrue([for e in values(var.finalize_schedules) : can(regex("^(rate|cron)\\(.+\\)$", e))])
    error_message = "finalize_schedules values must be rate(...) or cron(...) expressions."
  }
}

variable "schedules_enabled" {
  description = "Whether the finalize schedules run (false: created DISABLED, e.g. while backfilling)."
  type        = bool
  default     = true
}

variable "schedule_retry_attempts" {
  description = "Times EventBridge Scheduler retries an invocation of finalize or maintain it could not deliver, before the dead-letter queue."
  type        = number
  default     = 5
}

variable "schedule_max_event_age_seconds" {
  description = "Age after which EventBridge Scheduler stops retrying a finalize or maintain invocation (60-86400); the next scheduled run does the same work."
  type        = number
  default     = 900
}

variable "queue_kms_key_arn" {
  description = "KMS key of the dead-letter queue and of the schedules; null: SQS-managed encryption and Scheduler's AWS-owned key."
  type        = string
  default     = null
}

# --- Schedules of maintain -------------------------------------------------------------------

variable "maintenance_schedules" {
  description = "EventBridge Scheduler expressions (UTC) invoking maintain: one per table with all four operations (compact, rewrite_manifests, expire, orphans), daily and 20 minutes apart by default (raw 03:00, errors 03:20, daily 03:40, weekly 04:00, monthly 04:20), and raw_recent, compacting raw's partitions of the last 2 days (hourly at minute 30, clear of raw's daily run)."
  type = object({
    raw        = optional(string, "cron(0 3 * * ? *)")
    errors     = optional(string, "cron(20 3 * * ? *)")
    daily      = optional(string, "cron(40 3 * * ? *)")
    weekly     = optional(string, "cron(0 4 * * ? *)")
    monthly    = optional(string, "cron(20 4 * * ? *)")
    raw_recent = optional(string, "cron(30 * * * ? *)")
  })
  default = {}

  validation {
    condition     = alltrue([for e in values(var.maintenance_schedules) : can(regex("^(rate|cron)\\(.+\\)$", e))])
    error_message = "maintenance_schedules values must be rate(...) or cron(...) expressions."
  }
}

variable "maintenance_schedules_enabled" {
  description = "Whether the maintain schedules run (false: created DISABLED; maintain can still be invoked by hand)."
  type        = bool
  default     = true
}

variable "orphan_grace_days" {
  description = "Age in days a file no metadata references must reach before maintain's scheduled runs remove it as an orphan (grace_days of their input): a writer's files are never taken before its commit lands. At least 1."
  type        = number
  default     = 3

  validation {
    condition     = var.orphan_grace_days >= 1 && floor(var.orphan_grace_days) == var.orphan_grace_days
    error_message = "orphan_grace_days must be a whole number of days, at least 1."
  }
}

# --- Metrics, alarms and dashboard -----------------------------------------------------------

variable "metrics_namespace" {
  description = "CloudWatch namespace of the functions' own metrics (HEALTHLAKE_METRICS_NAMESPACE; Embedded Metric Format on stdout). The alarms and the dashboard read it."
  type        = string
  default     = "healthlake"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be 1-255 of A-Z a-z 0-9 . _ / # : - and must not start with AWS/."
  }
}

variable "alarms_enabled" {
  description = "Create the CloudWatch alarms of alarms.tf."
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "SNS topic notified when an alarm fires and when it recovers (alarm_actions and ok_actions); null: the alarms only change state."
  type        = string
  default     = null
}

variable "alarm_settings" {
  description = "Thresholds of the alarms (see README.md): offset_lag (records, 100000), error_rate (share of error rows, 0.05), error_rate_min_rows (100), stalled_minutes (15), ingest_errors (per 5 min, 0), finalize_slack_seconds ({daily = 1800, weekly = 7200, monthly = 7200}), commit_failures (per 10 min, 0), ingest_idle_minutes (null: no idle alarm)."
  type = object({
    offset_lag          = optional(number, 100000)
    error_rate          = optional(number, 0.05)
    error_rate_min_rows = optional(number, 100)
    stalled_minutes     = optional(number, 15)
    ingest_errors       = optional(number, 0)
    finalize_slack_seconds = optional(object({
      daily   = optional(number, 1800)
      weekly  = optional(number, 7200)
      monthly = optional(number, 7200)
    }), {})
    commit_failures     = optional(number, 0)
    ingest_idle_minutes = optional(number)
  })
  default = {}

  validation {
    condition     = var.alarm_settings.stalled_minutes >= 5 && var.alarm_settings.stalled_minutes % 5 == 0
    error_message = "alarm_settings.stalled_minutes must be a multiple of 5 (the alarms' period), at least 5."
  }
  validation {
    condition     = var.alarm_settings.ingest_idle_minutes == null || try(var.alarm_settings.ingest_idle_minutes % 5 == 0 && var.alarm_settings.ingest_idle_minutes >= 5, false)
    error_message = "alarm_settings.ingest_idle_minutes must be a multiple of 5, at least 5 (or null)."
  }
}

variable "dashboard_enabled" {
  description = "Create the CloudWatch dashboard <name> of dashboard.tf."
  type        = bool
  default     = true
}
